package app

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The helm test's check passes only on a 200 with the webhook's metrics, sent with the token.
func TestCheckMetrics(t *testing.T) {
	body := "emqx_webhook_decisions_total{cause=\"eviction\",verdict=\"held\",reason=\"Evacuating\"} 1\n"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer good":
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		case r.URL.Path == "/other":
			_, _ = w.Write([]byte("go_goroutines 5\n"))
		default:
			_, _ = w.Write([]byte(body))
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	token := func(v string) string {
		p := filepath.Join(dir, v)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var out bytes.Buffer
	if err := checkMetrics(context.Background(), srv.URL+"/metrics", token("good"), &out); err != nil ||
		!strings.HasPrefix(out.String(), "ok: ") {
		t.Fatalf("a webhook serving its metrics: %v %q", err, out.String())
	}
	for name, c := range map[string]struct{ path, token, want string }{
		"refused token":   {"/metrics", token("bad"), "401 Unauthorized"},
		"not the webhook": {"/other", token("good"), "no emqx_webhook_decisions_total"},
		"no token":        {"/metrics", filepath.Join(dir, "none"), "read the ServiceAccount token"},
	} {
		if err := checkMetrics(context.Background(), srv.URL+c.path, c.token, &out); err == nil ||
			!strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
}
