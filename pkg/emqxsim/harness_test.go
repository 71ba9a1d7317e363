package emqxsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Node names shaped like Helm's, so messages quote them as EMQX does.
const (
	nodeD = "emqx@emqx-0.emqx-headless.default.svc.cluster.local"
	nodeR = "emqx@emqx-1.emqx-headless.default.svc.cluster.local"
	nodeX = "emqx@emqx-2.emqx-headless.default.svc.cluster.local"
)

const apiKey, apiSecret = "key", "secret"

// harness serves every node on its own httptest server and speaks raw HTTP, so the simulator is
// tested independently of our client.
type harness struct {
	t    *testing.T
	c    *Cluster
	urls map[string]string
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	cfg.APIKeys = append(cfg.APIKeys, APIKey{Key: apiKey, Secret: apiSecret})
	if cfg.Reconnect == (ReconnectConfig{}) {
		cfg.Reconnect = ReconnectConfig{Share: 0} // EMQX's suites use clients that do not reconnect
	}
	cfg.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, c: c, urls: map[string]string{}}
	for _, n := range cfg.Nodes {
		srv := httptest.NewServer(c.Handler(n.Name))
		t.Cleanup(srv.Close)
		h.urls[n.Name] = srv.URL
	}
	return h
}

// twoNodes is a donor D and a recipient R, the setup of EMQX's own suites, with connections on D.
func twoNodes(t *testing.T, connsOnD int64) *harness {
	return newHarness(t, Config{Nodes: []NodeConfig{{Name: nodeD, Connections: connsOnD, Sessions: -1}, {Name: nodeR}}})
}

type response struct {
	status int
	raw    string
	body   map[string]any
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// call sends a request to the API of node via, authenticated with the API key.
func (h *harness) call(via, method, path string, body any) response {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		var b []byte
		if s, ok := body.(string); ok {
			b = []byte(s)
		} else {
			b, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.urls[via]+path, rd)
	req.SetBasicAuth(apiKey, apiSecret)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) response {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (h *harness) post(node, path string, body any) response {
	h.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	return h.call(node, http.MethodPost, "/api/v5/load_rebalance/"+node+path, body)
}

func (h *harness) get(via, path string) response {
	h.t.Helper()
	return h.call(via, http.MethodGet, "/api/v5"+path, nil)
}

func (h *harness) global(via string) map[string]any {
	h.t.Helper()
	r := h.get(via, "/load_rebalance/global_status")
	if r.status != http.StatusOK {
		h.t.Fatalf("global_status: %d %s", r.status, r.raw)
	}
	return r.body
}

func (h *harness) list(via, key string) []any {
	h.t.Helper()
	l, _ := h.global(via)[key].([]any)
	return l
}

func (h *harness) localStatus(via string) map[string]any {
	h.t.Helper()
	return h.get(via, "/load_rebalance/status").body
}

func (h *harness) node(name string) NodeState {
	h.t.Helper()
	ns, ok := h.c.Node(name)
	if !ok {
		h.t.Fatalf("no node %s", name)
	}
	return ns
}

// advanceUntil steps virtual time by one tick until cond holds, failing after limit.
func (h *harness) advanceUntil(limit time.Duration, what string, cond func() bool) {
	h.t.Helper()
	for waited := time.Duration(0); !cond(); waited += 100 * time.Millisecond {
		if waited > limit {
			h.t.Fatalf("%s: not reached within %v of simulated time", what, limit)
		}
		h.c.Advance(100 * time.Millisecond)
	}
}

func expectStatus(t *testing.T, r response, status int, code, msgPart string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got HTTP %d %s, want %d", r.status, r.raw, status)
	}
	if code != "" && r.str("code") != code {
		t.Fatalf("got code %q (%s), want %q", r.str("code"), r.raw, code)
	}
	if !strings.Contains(r.str("message"), msgPart) {
		t.Fatalf("message %q does not contain %q", r.str("message"), msgPart)
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func jsonUnmarshal(raw string, v any) error { return json.Unmarshal([]byte(raw), v) }
