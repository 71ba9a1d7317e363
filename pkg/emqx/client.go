package emqx

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Credentials authenticate to EMQX: an API key and secret (HTTP Basic), or a dashboard username
// and password (POST /login, then a bearer token). The API key wins when both are set.
type Credentials struct {
	APIKey    string
	APISecret string
	Username  string
	Password  string
}

// String never reveals a secret.
func (c Credentials) String() string {
	switch {
	case c.APIKey != "":
		return fmt.Sprintf("api key %q", c.APIKey)
	case c.Username != "":
		return fmt.Sprintf("dashboard user %q", c.Username)
	}
	return "no credentials"
}

// GoString keeps secrets out of %#v too.
func (c Credentials) GoString() string { return "emqx.Credentials{" + c.String() + "}" }

// DefaultMaxResponseBytes bounds every response body read.
const DefaultMaxResponseBytes = 8 << 20

// Client talks to one EMQX REST endpoint. It is safe for concurrent use.
type Client struct {
	base        *url.URL
	prefix      string
	creds       Credentials
	http        *http.Client
	clock       clock.Clock
	maxBody     int64
	getAttempts int
	backoff     time.Duration

	shared *sharedReads // nil unless WithSharedReads

	mu    sync.Mutex
	token string
}

// Format prints the client as its address and which credentials it uses, never a secret or a
// token, whatever the verb (%v, %+v, %#v, %s).
func (c *Client) Format(f fmt.State, _ rune) {
	if c == nil {
		fmt.Fprint(f, "emqx.Client(nil)")
		return
	}
	fmt.Fprintf(f, "emqx.Client{%s, %s}", c.base.Redacted(), c.creds.String())
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, TLS, per-request timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithTLS reaches EMQX over HTTPS with cfg (its dashboard's HTTPS listener): the HTTP client set
// so far is kept, with its own transport. Give it after WithHTTPClient.
func WithTLS(cfg *tls.Config) Option {
	return func(c *Client) {
		h := *c.http
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		h.Transport = tr
		c.http = &h
	}
}

// WithClock sets the clock used for retry back-off.
func WithClock(clk clock.Clock) Option { return func(c *Client) { c.clock = clk } }

// WithGETRetries sets how many times a GET is tried in all (at least 1) and the back-off step.
// Only GETs are retried: a POST may have taken effect.
func WithGETRetries(attempts int, backoff time.Duration) Option {
	return func(c *Client) { c.getAttempts, c.backoff = max(attempts, 1), backoff }
}

// New returns a client for the EMQX API at baseURL (scheme, host, port and an optional path
// prefix, such as an API server proxy path). Credentials in the URL are refused: pass them in creds.
func New(baseURL string, creds Credentials, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("invalid EMQX URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("invalid EMQX URL %q: want http(s)://host:port, such as http://127.0.0.1:18083", baseURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("invalid EMQX URL: it carries credentials; pass them as an API key or username instead")
	}
	c := &Client{
		base:        u,
		creds:       creds,
		http:        &http.Client{Timeout: 20 * time.Second},
		clock:       clock.RealClock{},
		maxBody:     DefaultMaxResponseBytes,
		getAttempts: 3,
		backoff:     250 * time.Millisecond,
	}
	for _, o := range opts {
		o(c)
	}
	c.prefix = "/api/v5"
	return c, nil
}

// URL returns the base URL the client talks to.
func (c *Client) URL() string { return c.base.String() }

// Nodes lists the cluster's nodes: running ones, then stubs for stopped core nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var nodes []Node
	err := c.get(ctx, "/nodes", &nodes)
	return nodes, err
}

// Node returns one running node; a stopped or unknown node is a 404.
func (c *Client) Node(ctx context.Context, name string) (Node, error) {
	var n Node
	err := c.get(ctx, "/nodes/"+url.PathEscape(name), &n)
	return n, err
}

// LocalStatus returns the status of the node that serves the request.
func (c *Client) LocalStatus(ctx context.Context) (LocalStatus, error) {
	var s LocalStatus
	err := c.get(ctx, "/load_rebalance/status", &s)
	return s, err
}

// GlobalStatus returns the cluster-wide evacuations, purges and rebalances.
func (c *Client) GlobalStatus(ctx context.Context) (GlobalStatus, error) {
	var g GlobalStatus
	err := c.get(ctx, "/load_rebalance/global_status", &g)
	return g, err
}

// GlobalZone reads GET /configs/global_zone (JSON): the zone settings every node has, among them,
// from 5.8, durable_sessions. Reading it needs an API key's scope "system" where keys have scopes.
func (c *Client) GlobalZone(ctx context.Context) (Zone, error) {
	var z Zone
	err := c.get(ctx, "/configs/global_zone", &z)
	return z, err
}

// Available asks the serving node's availability check: false while its eviction agent is enabled
// (evacuating, rebalance donor, purging).
func (c *Client) Available(ctx context.Context) (bool, error) {
	err := c.do(ctx, http.MethodGet, "/load_rebalance/availability_check", nil, nil, false)
	if err == nil {
		return true, nil
	}
	if e, ok := asError(err); ok && e.StatusCode == http.StatusServiceUnavailable && e.Code == CodeNodeEvacuating {
		return false, nil
	}
	return false, err
}

// StartEvacuation starts evacuating node.
func (c *Client) StartEvacuation(ctx context.Context, node string, req EvacuationRequest) error {
	if err := req.Validate(); err != nil {
		return fmt.Errorf("evacuation request: %w", err)
	}
	return c.post(ctx, "/load_rebalance/"+url.PathEscape(node)+"/evacuation/start", req)
}

// StopEvacuation stops the evacuation of node and reopens it to clients.
func (c *Client) StopEvacuation(ctx context.Context, node string) error {
	return c.post(ctx, "/load_rebalance/"+url.PathEscape(node)+"/evacuation/stop", struct{}{})
}

// StartRebalance starts a rebalance coordinated by coordinator.
func (c *Client) StartRebalance(ctx context.Context, coordinator string, req RebalanceRequest) error {
	if err := req.Validate(); err != nil {
		return fmt.Errorf("rebalance request: %w", err)
	}
	return c.post(ctx, "/load_rebalance/"+url.PathEscape(coordinator)+"/start", req)
}

// StopRebalance stops the rebalance coordinated by coordinator.
func (c *Client) StopRebalance(ctx context.Context, coordinator string) error {
	return c.post(ctx, "/load_rebalance/"+url.PathEscape(coordinator)+"/stop", struct{}{})
}

// ForceLeave makes EMQX drop node from the cluster (DELETE /cluster/{node}/force_leave, answered
// 204). Ask any node but that one. Only a node EMQX lists as stopped and whose pod is gone for good
// may be made to leave: a running node is expelled and restarts standalone with its data wiped
// (pkg/emqx/API.md).
func (c *Client) ForceLeave(ctx context.Context, node string) error {
	return c.do(ctx, http.MethodDelete, "/cluster/"+url.PathEscape(node)+"/force_leave", nil, nil, false)
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	if c.shared != nil && !IsFresh(ctx) {
		return c.sharedGet(ctx, path, out)
	}
	return c.do(ctx, http.MethodGet, path, nil, out, true)
}

func (c *Client) post(ctx context.Context, path string, body any) error {
	return c.do(ctx, http.MethodPost, path, body, nil, false)
}

// do sends one logical request. GETs are retried (bounded) on transport errors and 502/503/504;
// a 401 for an expired or unknown bearer token triggers one fresh login and one retry.
func (c *Client) do(ctx context.Context, method, path string, body, out any, retry bool) error {
	if method != http.MethodGet && c.shared != nil {
		defer c.shared.wrote() // after the write: a read asked meanwhile is not kept either
		c.shared.wrote()
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	attempts := 1
	if retry && method == http.MethodGet {
		attempts = c.getAttempts
	}
	relogged := false
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("emqx %s %s: %w (last error: %w)", method, c.prefix+path, ctx.Err(), err)
			case <-c.clock.After(c.backoff * time.Duration(i)):
			}
		}
		err = c.send(ctx, method, path, payload, out, true)
		if e, ok := asError(err); ok && !relogged && c.usesLogin() &&
			(e.Code == CodeTokenTimeOut || e.Code == CodeBadToken) {
			relogged = true
			c.setToken("")
			err = c.send(ctx, method, path, payload, out, true)
		}
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func retryable(err error) bool {
	if IsUnreachable(err) {
		return true
	}
	e, ok := asError(err)
	return ok && (e.StatusCode == http.StatusBadGateway || e.StatusCode == http.StatusGatewayTimeout ||
		e.StatusCode == http.StatusServiceUnavailable && e.Code != CodeNodeEvacuating)
}

func (c *Client) usesLogin() bool { return c.creds.APIKey == "" && c.creds.Username != "" }

func (c *Client) setToken(t string) {
	c.mu.Lock()
	c.token = t
	c.mu.Unlock()
}

func (c *Client) authorize(ctx context.Context, req *http.Request) error {
	switch {
	case c.creds.APIKey != "":
		req.SetBasicAuth(c.creds.APIKey, c.creds.APISecret)
	case c.creds.Username != "":
		c.mu.Lock()
		token := c.token
		c.mu.Unlock()
		if token == "" {
			var err error
			if token, err = c.login(ctx); err != nil {
				return err
			}
			c.setToken(token)
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return nil
}

func (c *Client) login(ctx context.Context) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": c.creds.Username, "password": c.creds.Password})
	var out struct {
		Token string `json:"token"`
	}
	if err := c.send(ctx, http.MethodPost, "/login", body, &out, false); err != nil {
		return "", fmt.Errorf("log in to EMQX as %q: %w", c.creds.Username, err)
	}
	if out.Token == "" {
		return "", &DecodeError{
			Method: http.MethodPost,
			Path:   c.prefix + "/login",
			Err:    errors.New("no token in the answer"),
		}
	}
	return out.Token, nil
}

func (c *Client) send(ctx context.Context, method, path string, payload []byte, out any, auth bool) error {
	// path is escaped already: EMQX-provided names in it went through url.PathEscape, so a node
	// name cannot add segments or a query.
	u := *c.base
	u.RawPath = strings.TrimSuffix(c.base.EscapedPath(), "/") + c.prefix + path
	var err error
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return fmt.Errorf("build %s %s: %w", method, c.prefix+path, err)
	}
	full := c.prefix + path
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, full, err)
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		if err := c.authorize(ctx, req); err != nil {
			return err
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &UnreachableError{URL: c.base.Redacted(), Err: stripURL(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return &UnreachableError{
			URL: c.base.Redacted(),
			Err: fmt.Errorf("reading the answer to %s %s: %w", method, full, stripURL(err)),
		}
	}
	if int64(len(data)) > c.maxBody {
		return &ResponseTooLargeError{Method: method, Path: full, Limit: c.maxBody}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return parseError(method, full, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &DecodeError{Method: method, Path: full, Err: err}
	}
	return nil
}

// stripURL drops the *url.Error wrapper, whose text repeats the URL; the caller names the endpoint.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func parseError(method, path string, status int, data []byte) error {
	e := &Error{Method: method, Path: path, StatusCode: status}
	var body struct {
		Code    any `json:"code"`
		Message any `json:"message"`
	}
	if json.Unmarshal(data, &body) == nil {
		e.Code = fmt.Sprint(orEmpty(body.Code))
		e.Message = messageText(body.Message)
	} else {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		e.Message = msg
	}
	return e
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

// messageText renders EMQX's message, which is usually a string but may be a list or an
// object (schema errors from some versions).
func messageText(v any) string {
	switch m := v.(type) {
	case nil:
		return ""
	case string:
		return m
	default:
		b, _ := json.Marshal(m)
		return string(b)
	}
}
