package emqx

import (
	"fmt"
	"strings"
	"testing"
)

// Nothing that prints a client reveals its secret or its token.
func TestPrintingAClientNeverRevealsItsSecret(t *testing.T) {
	for _, creds := range []Credentials{
		{APIKey: "key", APISecret: "s3cret-api"},
		{Username: "admin", Password: "s3cret-pw"},
	} {
		c, err := New("http://198.18.0.1:18083", creds)
		if err != nil {
			t.Fatal(err)
		}
		c.token = "s3cret-token"
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, c) + fmt.Sprintf(verb, struct{ C *Client }{c}) + fmt.Sprintf(verb, creds)
			if strings.Contains(out, "s3cret") {
				t.Fatalf("%s printed a secret: %s", verb, out)
			}
		}
	}
}

// Text from EMQX is one bounded line with no terminal escape left in it.
func TestEMQXErrorTextIsEscapedAndBounded(t *testing.T) {
	e := &Error{
		Method:     "POST",
		Path:       "/x",
		StatusCode: 400,
		Code:       "BAD\x1b[31mREQUEST",
		Message:    "line1\nline2 \x1b]0;title\x07" + strings.Repeat("a", 2000),
	}
	msg := e.Error()
	if strings.ContainsAny(msg, "\x1b\x07\n") || len(msg) > 700 || !strings.Contains(msg, `\x1b[31m`) ||
		!strings.HasSuffix(msg, "…") {
		t.Fatalf("%q", msg)
	}
}
