package emqx_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// roundTripper answers every request in process, without a socket.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// stubBody answers every request with one fixed status and body.
func stubBody(tb testing.TB, status int, body []byte) *emqx.Client {
	tb.Helper()
	rt := roundTripper(func(r *http.Request) (*http.Response, error) {
		return &http.Response{
			StatusCode: status,
			Body:       io.NopCloser(bytes.NewReader(body)),
			Header:     http.Header{},
			Request:    r,
		}, nil
	})
	c, err := emqx.New("http://emqx.invalid:18083", apiKey, emqx.WithHTTPClient(&http.Client{Transport: rt}),
		emqx.WithGETRetries(1, 0))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// typedError reports whether err is one of the client's typed errors.
func typedError(err error) bool {
	var e *emqx.Error
	var d *emqx.DecodeError
	var l *emqx.ResponseTooLargeError
	return errors.As(err, &e) || errors.As(err, &d) || errors.As(err, &l)
}

func TestMalformedBodiesGiveTypedErrors(t *testing.T) {
	for _, body := range []string{
		``, `{`, `[]`, `"text"`, `{"evacuations":"x"}`, `{"evacuations":[{"stats":{"current_connected":"many"}}]}`,
		`{"rebalances":[{"connection_goal":"x"}]}`, `{"evacuations":[{"stats":{"current_sessions":1.5}}]}`,
	} {
		_, err := stubBody(t, http.StatusOK, []byte(body)).GlobalStatus(context.Background())
		var d *emqx.DecodeError
		if !errors.As(err, &d) {
			t.Errorf("%q: got %v, want a DecodeError", body, err)
		}
	}
	c := stubBody(
		t,
		http.StatusOK,
		[]byte(`{"rebalances":[{"node":"n","connection_goal":25.0,"donor_conn_avg":33.333333333333336}]}`),
	)
	g, err := c.GlobalStatus(context.Background())
	if err != nil || *g.Rebalances[0].ConnectionGoal != 25 || *g.Rebalances[0].DonorConnAvg != 33.333333333333336 {
		t.Fatalf("float goals: %+v %v", g, err)
	}
}

func FuzzDecodeResponses(f *testing.F) {
	for _, s := range []string{
		`{"evacuations":[],"purges":[],"rebalances":[]}`,
		`{"status":"enabled","process":"rebalance","connection_goal":210.0,"stats":{"initial_connected":900}}`,
		`[{"node":"emqx@a","node_status":"running","connections":1}]`,
		`{"code":"BAD_REQUEST","message":"error on node 'x': already_started"}`,
		`{"code":400,"message":["nothing_to_balance"]}`, `{`, `null`, strings.Repeat("[", 1000),
	} {
		f.Add(200, []byte(s))
		f.Add(400, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 200 || status > 599 {
			status = 200 + (status%400+400)%400
		}
		c := stubBody(t, status, body)
		ctx := context.Background()
		_, err1 := c.GlobalStatus(ctx)
		_, err2 := c.LocalStatus(ctx)
		_, err3 := c.Nodes(ctx)
		err4 := c.StartEvacuation(ctx, "emqx@a", emqx.EvacuationRequest{})
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil && !typedError(err) {
				t.Fatalf("untyped error %v", err)
			}
			if err != nil && len(err.Error()) > 2000 {
				t.Fatalf("error text of %d bytes: messages must stay bounded", len(err.Error()))
			}
		}
	})
}

func BenchmarkDecodeGlobalStatus(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"purges":[],"rebalances":[{"node":"emqx@c","coordinator_node":"emqx@c",` +
		`"state":"evicting_conns","connection_eviction_rate":500,"session_eviction_rate":500,"donors":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"emqx@emqx-%d.emqx-headless.default.svc.cluster.local"`, i)
	}
	sb.WriteString(`],"recipients":["emqx@r"],"connection_goal":150.0,"donor_conn_avg":620.5}],"evacuations":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"node":"emqx@emqx-%d.emqx-headless.default.svc.cluster.local",`+
			`"state":"evicting_conns","connection_eviction_rate":500,"session_eviction_rate":500,`+
			`"connection_goal":0,"session_goal":0,"session_recipients":[`+
			`"emqx@emqx-0.emqx-headless.default.svc.cluster.local",`+
			`"emqx@emqx-1.emqx-headless.default.svc.cluster.local"],`+
			`"stats":{"initial_connected":10000,"current_connected":5000,`+
			`"initial_sessions":10000,"current_sessions":10000}}`,
			i)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	c := stubBody(b, http.StatusOK, body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GlobalStatus(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
