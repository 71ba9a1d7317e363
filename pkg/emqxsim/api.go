package emqxsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

const maxRequestBody = 1 << 20

// Handler serves the REST API of one node: the node that serves a request is the node that
// answers node-local endpoints (status, availability_check), exactly as on a real pod. A node that
// is down (or removed) drops the connection without an answer.
func (c *Cluster) Handler(node string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
		if err != nil {
			writeError(w, r, &apiError{http.StatusBadRequest, "BAD_REQUEST", "unreadable request body"})
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		n := c.node(node)
		if n == nil || !n.running {
			dropConnection(w)
			return
		}
		if strings.HasPrefix(r.URL.Path, simPrefix) {
			c.serveSim(w, r, raw)
			return
		}
		if c.apiDown {
			dropConnection(w)
			return
		}
		if r.URL.Path == "/status" {
			// The liveness/readiness endpoint the Helm chart probes: up while the node runs,
			// evacuating or not.
			w.Header().Set("Content-Type", "text/plain")
			_, _ = fmt.Fprintf(w, "Node %s is started\nemqx is running", n.name)
			return
		}
		n.apiRequests++
		c.serveAPI(n, w, r, raw)
	})
}

func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// rebalanceAPI reports whether this build serves load_rebalance and node_eviction: Enterprise
// from 5.0.4, every build from 5.9 (API.md §1).
func (c *Cluster) rebalanceAPI() bool {
	return c.cfg.Edition != "Opensource" || c.version.AtLeast(5, 9, 0)
}

func (c *Cluster) serveAPI(n *Node, w http.ResponseWriter, r *http.Request, raw []byte) {
	p, ok := strings.CutPrefix(r.URL.Path, "/api/v5")
	if !ok {
		notFound(w, r)
		return
	}
	if strings.HasPrefix(p, "/ds/") {
		if err := c.authorize(r); err != nil {
			writeError(w, r, err)
			return
		}
		c.serveDS(w, r, p, raw)
		return
	}
	rebalanceRoute := strings.HasPrefix(p, "/load_rebalance/") || strings.HasPrefix(p, "/node_eviction/")
	if rebalanceRoute && !c.rebalanceAPI() {
		notFound(w, r)
		return
	}
	route, arg := matchRoute(p)
	if route == "" {
		notFound(w, r)
		return
	}
	method := map[string]string{
		"login": http.MethodPost, "evac_start": http.MethodPost, "evac_stop": http.MethodPost,
		"reb_start": http.MethodPost, "reb_stop": http.MethodPost, "force_leave": http.MethodDelete,
		"change_pwd": http.MethodPost,
	}[route]
	if method == "" {
		method = http.MethodGet
	}
	if r.Method != method && route != "configs" {
		writeError(w, r, &apiError{http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Method Not Allowed"})
		return
	}
	switch route {
	case "login":
		c.login(w, r, raw)
		return
	case "availability":
		// No auth since e5.4.0; an Authorization header is ignored.
		if n.agentKind != "" {
			writeError(w, r, &apiError{http.StatusServiceUnavailable, "NODE_EVACUATING", "Node Evacuating"})
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	if err := c.authorize(r); err != nil {
		writeError(w, r, err)
		return
	}
	if r.Method == http.MethodPost && len(strings.TrimSpace(string(raw))) > 0 &&
		!strings.HasPrefix(
			r.Header.Get("Content-Type"),
			"application/json",
		) && (route == "evac_start" || route == "reb_start") {
		writeError(
			w,
			r,
			&apiError{
				http.StatusUnsupportedMediaType,
				"UNSUPPORTED_MEDIA_TYPE",
				"content-type:application/json Required",
			},
		)
		return
	}
	switch route {
	case "configs":
		c.serveConfigs(w, r, raw)
		return
	case "global_zone":
		writeJSON(w, http.StatusOK, c.globalZoneDoc())
		return
	case "change_pwd":
		if aerr := c.changePassword(r, arg, raw); aerr != nil {
			writeError(w, r, aerr)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	case "force_leave":
		if err := c.forceLeave(n, arg); err != nil {
			writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var res any
	var err *apiError
	switch route {
	case "nodes":
		res = c.nodesDoc()
	case "node":
		res, err = c.nodeDoc(arg)
	case "status":
		res = n.localStatusDoc()
	case "global_status":
		res = c.globalStatusDoc()
	case "eviction_status":
		res = n.evictionStatusDoc()
	case "evac_start":
		res, err = c.startEvacuationAPI(arg, raw)
	case "evac_stop":
		res, err = c.stopAPI(arg, (*Node).stopEvacuation)
	case "reb_start":
		res, err = c.startRebalanceAPI(arg, raw)
	case "reb_stop":
		res, err = c.stopAPI(arg, (*Node).stopRebalance)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// matchRoute maps a /api/v5-relative path to a route name and its {node} argument.
func matchRoute(p string) (string, string) {
	switch p {
	case "/login":
		return "login", ""
	case "/nodes":
		return "nodes", ""
	case "/configs":
		return "configs", ""
	case "/configs/global_zone":
		return "global_zone", ""
	case "/load_rebalance/status":
		return "status", ""
	case "/load_rebalance/global_status":
		return "global_status", ""
	case "/load_rebalance/availability_check":
		return "availability", ""
	case "/node_eviction/status":
		return "eviction_status", ""
	}
	if node, ok := strings.CutPrefix(p, "/nodes/"); ok && node != "" && !strings.Contains(node, "/") {
		return "node", node
	}
	if rest, ok := strings.CutPrefix(p, "/users/"); ok {
		if user, ok := strings.CutSuffix(rest, "/change_pwd"); ok && user != "" && !strings.Contains(user, "/") {
			return "change_pwd", user
		}
	}
	if rest, ok := strings.CutPrefix(p, "/cluster/"); ok {
		if node, ok := strings.CutSuffix(rest, "/force_leave"); ok && node != "" && !strings.Contains(node, "/") {
			return "force_leave", node
		}
	}
	rest, ok := strings.CutPrefix(p, "/load_rebalance/")
	if !ok {
		return "", ""
	}
	for suffix, route := range map[string]string{
		"/evacuation/start": "evac_start", "/evacuation/stop": "evac_stop",
	} {
		if node, ok := strings.CutSuffix(rest, suffix); ok && node != "" && !strings.Contains(node, "/") {
			return route, node
		}
	}
	for suffix, route := range map[string]string{"/start": "reb_start", "/stop": "reb_stop"} {
		if node, ok := strings.CutSuffix(rest, suffix); ok && node != "" && !strings.Contains(node, "/") {
			return route, node
		}
	}
	return "", ""
}

// notFound is the router's answer to a path it does not serve; the body follows Accept.
func notFound(w http.ResponseWriter, r *http.Request) {
	accept := r.Header.Get("Accept")
	switch {
	case strings.HasPrefix(accept, "application/json"):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"code": "NOT_FOUND", "message": "Request Path Not Found"}`)
	case strings.HasPrefix(accept, "text/plain"):
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "404 - NOT FOUND")
	default:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(
			w,
			"<html><head><title>404 - NOT FOUND</title></head><body><h1>404 - NOT FOUND</h1></body></html>",
		)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, _ *http.Request, e *apiError) {
	if e.code == "AUTHORIZATION_HEADER_ERROR" {
		w.Header().Set("WWW-Authenticate", `Basic Realm="emqx-dashboard"`)
	}
	writeJSON(w, e.status, map[string]string{"code": e.code, "message": e.message})
}

// authorize applies API.md §2.2: Basic API key (role-checked) or a Bearer token from /login.
func (c *Cluster) authorize(r *http.Request) *apiError {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return &apiError{http.StatusUnauthorized, "BAD_API_KEY_OR_SECRET", "Check api_key/api_secret"}
		}
		key, secret, _ := strings.Cut(string(dec), ":")
		for _, k := range c.cfg.APIKeys {
			if k.Key == key && k.Secret == secret {
				if err := roleAllows(k.Role, r.Method); err != nil {
					return err
				}
				return c.scopeAllows(k, r.URL.Path)
			}
		}
		return &apiError{http.StatusUnauthorized, "BAD_API_KEY_OR_SECRET", "Check api_key/api_secret"}
	case "bearer":
		token := strings.TrimSpace(cred)
		tok, ok := c.tokens[token]
		if !ok {
			return &apiError{http.StatusUnauthorized, "BAD_TOKEN", "Get a token by POST /login"}
		}
		if !c.now.Before(tok.expires) {
			delete(c.tokens, token)
			return &apiError{http.StatusUnauthorized, "TOKEN_TIME_OUT", "Token expired, get new token by POST /login"}
		}
		return nil
	}
	return &apiError{http.StatusUnauthorized, "AUTHORIZATION_HEADER_ERROR", "Support authorization: basic/bearer "}
}

// scopeAllows: from 5.10.4 (6.1.2, 6.2.1) a key with scopes reaches the cluster-operations paths
// only with that scope (emqx_mgmt_auth.erl, check_scopes; the paths' scope from
// emqx_mgmt_api_key_scopes.erl). A key without scopes is unrestricted.
func (c *Cluster) scopeAllows(k APIKey, path string) *apiError {
	if k.Scopes == nil || !c.version.HasAPIKeyScopes() || !clusterOperationsPath(path) {
		return nil
	}
	for _, s := range k.Scopes {
		if s == scopeClusterOperations {
			return nil
		}
	}
	return &apiError{
		http.StatusForbidden,
		"UNAUTHORIZED_ROLE",
		"This API Key don't have permission to access this resource",
	}
}

const scopeClusterOperations = "cluster_operations"

func clusterOperationsPath(path string) bool {
	p := strings.TrimPrefix(path, "/api/v5")
	for _, prefix := range []string{"/nodes", "/load_rebalance/", "/node_eviction/", "/cluster/"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

func roleAllows(role, method string) *apiError {
	switch role {
	case "", "administrator":
		return nil
	case "viewer":
		if method == http.MethodGet {
			return nil
		}
	}
	return &apiError{
		http.StatusForbidden,
		"UNAUTHORIZED_ROLE",
		"This API Key don't have permission to access this resource",
	}
}

func (c *Cluster) login(w http.ResponseWriter, r *http.Request, raw []byte) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
		MFAToken string `json:"mfa_token"`
	}
	if json.Unmarshal(raw, &req) != nil {
		writeError(w, r, badRequest(hoconError("root", "not a JSON object", string(raw))))
		return
	}
	if c.version.LocksLogins() && c.now.Before(c.lockedUntil[req.Username]) {
		// Locked: refused whatever the password (emqx_dashboard_admin.erl, sign_token/3 asks
		// emqx_dashboard_login_lock:verify/1 first).
		writeError(w, r, &apiError{http.StatusUnauthorized, "LOGIN_LOCKED", "Login locked"})
		return
	}
	pw, ok := c.cfg.Users[req.Username]
	if c.cfg.NoLogin || !ok || pw != req.Password {
		if ok && !c.cfg.NoLogin {
			c.failedLogin(req.Username)
		}
		writeError(w, r, &apiError{http.StatusUnauthorized, "BAD_USERNAME_OR_PWD", "Auth failed"})
		return
	}
	if c.cfg.Hardened && c.version.HasHardenedProfile() && req.Password == "public" {
		// emqx_dashboard_admin.erl, check_unchanged_default_credentials/1 under the hardened
		// profile; not a password error, so it does not count towards the lock.
		writeError(w, r, &apiError{http.StatusUnauthorized, "BAD_USERNAME_OR_PWD",
			"Default admin password must be changed before login is allowed.\nRun: " +
				"emqx ctl admins passwd admin <a-strong-password>.\n" +
				"Or configure: dashboard.default_password = \"<a-strong-password>\".\n"})
		return
	}
	if slices.Contains(c.cfg.MFA, req.Username) && req.MFAToken == "" {
		// emqx_dashboard_admin.erl, verify_mfa_token: a user with MFA needs a token; a program
		// has none.
		writeError(
			w,
			r,
			&apiError{http.StatusUnauthorized, "BAD_MFA_TOKEN", `{"error":"missing_mfa_token","mechanism":"totp"}`},
		)
		return
	}
	delete(c.failedLogins, req.Username)
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	bearer := hex.EncodeToString(b)
	c.tokens[bearer] = token{user: req.Username, expires: c.now.Add(c.cfg.TokenTTL)}
	writeJSON(w, http.StatusOK, map[string]any{
		"token":   bearer,
		"version": c.version.String(),
		"role":    "administrator",
		"license": map[string]string{"edition": "ee"},
	})
}

// changePassword is POST /users/{username}/change_pwd (emqx_dashboard_api.erl, change_pwd/2): a
// person changing the dashboard password; API keys may not (API_KEY_NOT_ALLOW on /users paths).
func (c *Cluster) changePassword(r *http.Request, user string, raw []byte) *apiError {
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "basic") {
		return &apiError{http.StatusUnauthorized, "API_KEY_NOT_ALLOW",
			"Please use bearer Token instead, using API key/secret in /users path is not permitted"}
	}
	var req struct {
		Old string `json:"old_pwd"`
		New string `json:"new_pwd"`
	}
	if json.Unmarshal(raw, &req) != nil || req.Old == "" || req.New == "" {
		return badRequest("Old password or new password undefined")
	}
	pw, ok := c.cfg.Users[user]
	switch {
	case !ok:
		return &apiError{http.StatusNotFound, "USER_NOT_FOUND", "User not found"}
	case pw != req.Old:
		return &apiError{http.StatusBadRequest, "ERROR_PWD_NOT_MATCH", "Old password not match"}
	}
	c.cfg.Users[user] = req.New
	// The user's tokens die with the old password (emqx_dashboard_admin.erl, change_password:
	// emqx_dashboard_token:destroy_by_username/1).
	for t, tok := range c.tokens {
		if tok.user == user {
			delete(c.tokens, t)
		}
	}
	return nil
}

// failedLogin counts a wrong password (only a wrong password of a known user counts:
// emqx_dashboard_api.erl, register_unsuccessful_login/2) and, from 5.9, locks the user once
// loginMaxAttempts have failed within loginInterval (emqx_dashboard_login_lock.erl).
func (c *Cluster) failedLogin(user string) {
	if !c.version.LocksLogins() {
		return
	}
	recent := []time.Time{c.now}
	for _, t := range c.failedLogins[user] {
		if c.now.Sub(t) < loginInterval {
			recent = append(recent, t)
		}
	}
	c.failedLogins[user] = recent
	if len(recent) >= loginMaxAttempts {
		c.lockedUntil[user] = c.now.Add(emqx.LoginLockDuration)
		c.logf("dashboard_user_login_locked: %s until %s", user, c.now.Add(emqx.LoginLockDuration).Format(time.RFC3339))
	}
}

// LoginLocked reports whether the dashboard user is locked out now (5.9+).
func (c *Cluster) LoginLocked(user string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now.Before(c.lockedUntil[user])
}

// nodeByPath resolves the {node} of a path: it must be a running member (API.md §3.1).
func (c *Cluster) nodeByPath(name string) (*Node, *apiError) {
	n := c.node(name)
	if n == nil || !n.running {
		return nil, &apiError{http.StatusNotFound, "NOT_FOUND", "Node not found: " + name}
	}
	return n, nil
}

// checkNodeList validates nodes / migrate_to: a name never known is invalid; a known one that is
// down or whose agent is enabled is unavailable (HTTP 400 with code NOT_FOUND).
func (c *Cluster) checkNodeList(names []string) ([]*Node, *apiError) {
	var invalid, unavailable []string
	var out []*Node
	for _, name := range names {
		n := c.node(name)
		switch {
		case !c.known[name]:
			invalid = append(invalid, name)
		case n == nil || !n.running || n.agentKind != "":
			unavailable = append(unavailable, name)
		default:
			out = append(out, n)
		}
	}
	if len(invalid) > 0 {
		return nil, badRequest("Invalid nodes: " + erlBinaryList(invalid))
	}
	if len(unavailable) > 0 {
		return nil, &apiError{http.StatusBadRequest, "NOT_FOUND", "Nodes unavailable: " + erlAtomList(unavailable)}
	}
	return out, nil
}

func nodeError(n *Node, err error) *apiError {
	var rpc *rpcError
	if errors.As(err, &rpc) {
		return &apiError{
			http.StatusServiceUnavailable,
			"RPC_ERROR",
			fmt.Sprintf("RPC error on node %s: %s", erlAtom(n.name), rpc.reason),
		}
	}
	return badRequest(fmt.Sprintf("error on node %s: %s", erlAtom(n.name), err))
}

func (c *Cluster) startEvacuationAPI(node string, raw []byte) (any, *apiError) {
	b, aerr := validateBody(raw, evacuationSchema)
	if aerr != nil {
		return nil, aerr
	}
	n, aerr := c.nodeByPath(node)
	if aerr != nil {
		return nil, aerr
	}
	o := defaultEvacOpts()
	if names, ok := b.lists["migrate_to"]; ok {
		if _, aerr := c.checkNodeList(names); aerr != nil {
			return nil, aerr
		}
		o.migrateTo = names
	}
	b.apply(&o.connRate, "conn_evict_rate")
	b.apply(&o.sessRate, "sess_evict_rate")
	b.applyDur(&o.waitHealthCheck, "wait_health_check")
	b.applyDur(&o.waitTakeover, "wait_takeover")
	if err := n.startEvacuation(o); err != nil {
		return nil, nodeError(n, err)
	}
	return struct{}{}, nil
}

func (c *Cluster) startRebalanceAPI(node string, raw []byte) (any, *apiError) {
	schema := rebalanceSchema
	if c.version.AtLeast(5, 9, 0) {
		schema = make(map[string]fieldKind, len(rebalanceSchema)+2)
		for k, v := range rebalanceSchema {
			schema[k] = v
		}
		for _, k := range rpcTimeoutFields {
			schema[k] = kindMillis
		}
	}
	b, aerr := validateBody(raw, schema)
	if aerr != nil {
		return nil, aerr
	}
	n, aerr := c.nodeByPath(node)
	if aerr != nil {
		return nil, aerr
	}
	var participants []*Node
	if names, ok := b.lists["nodes"]; ok {
		if participants, aerr = c.checkNodeList(names); aerr != nil {
			return nil, aerr
		}
	}
	o := defaultRebalanceOpts()
	b.apply(&o.connRate, "conn_evict_rate")
	b.apply(&o.sessRate, "sess_evict_rate")
	b.apply(&o.absConn, "abs_conn_threshold")
	b.apply(&o.absSess, "abs_sess_threshold")
	b.applyDur(&o.waitHealthCheck, "wait_health_check")
	b.applyDur(&o.waitTakeover, "wait_takeover")
	if d, ok := b.durs["conn_evict_rpc_timeout"]; ok {
		o.connRPC = d.Milliseconds()
	}
	if d, ok := b.durs["sess_evict_rpc_timeout"]; ok {
		o.sessRPC = d.Milliseconds()
	}
	if f, ok := b.rels["rel_conn_threshold"]; ok {
		o.relConn = f
	}
	if f, ok := b.rels["rel_sess_threshold"]; ok {
		o.relSess = f
	}
	if err := n.startRebalance(o, participants); err != nil {
		return nil, nodeError(n, err)
	}
	return struct{}{}, nil
}

func (c *Cluster) stopAPI(node string, stop func(*Node) error) (any, *apiError) {
	n, aerr := c.nodeByPath(node)
	if aerr != nil {
		return nil, aerr
	}
	if err := stop(n); err != nil {
		return nil, nodeError(n, err)
	}
	return struct{}{}, nil
}

func (b body) apply(dst *int64, key string) {
	if v, ok := b.ints[key]; ok {
		*dst = v
	}
}

func (b body) applyDur(dst *time.Duration, key string) {
	if v, ok := b.durs[key]; ok {
		*dst = v
	}
}
