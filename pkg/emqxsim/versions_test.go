package emqxsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Recorded facts: what changed between EMQX releases, each test naming the source it comes from
// (github.com/emqx/emqx at the tags named).

// durableCluster is D (with clients, all persistent) and R, playing version with durable sessions
// on or off, at EMQX's default rates and 1 s waits.
func durableCluster(t *testing.T, version string, durable bool, clients int64) *harness {
	t.Helper()
	return newHarness(t, Config{Version: version, DurableSessions: durable,
		Nodes: []NodeConfig{{Name: nodeD, Connections: clients, Sessions: -1}, {Name: nodeR}}})
}

func evacuateD(h *harness) {
	h.t.Helper()
	r := h.post(nodeD, "/evacuation/start", map[string]any{"wait_health_check": 1, "wait_takeover": 1})
	if r.status != http.StatusOK {
		h.t.Fatalf("start: %d %s", r.status, r.raw)
	}
}

func evacuationOf(h *harness, node string) map[string]any {
	h.t.Helper()
	for _, e := range h.list(nodeR, "evacuations") {
		if m := e.(map[string]any); m["node"] == node {
			return m
		}
	}
	h.t.Fatalf("no evacuation of %s", node)
	return nil
}

func nodeEntry(h *harness, node string) map[string]any {
	h.t.Helper()
	r := h.get(nodeR, "/nodes/"+node)
	if r.status != http.StatusOK {
		h.t.Fatalf("/nodes/%s: %d %s", node, r.status, r.raw)
	}
	return r.body
}

// e5.8.0+ apps/emqx_eviction_agent/src/emqx_eviction_agent.erl, session_count/0: "session_count(any)
// + durable_session_count()" (d0e6f22); the durable part is the bookkeeper's cached cluster-wide
// count of disconnected durable sessions (emqx_persistent_session_bookkeeper.erl,
// get_disconnected_session_count/0, refreshed every disconnected_session_count_refresh_interval).
// Durable sessions have no channel, so nothing evicts them: the evacuation stays in
// evicting_sessions while any is offline anywhere, though the node holds no channel (GET /nodes:
// connections is ets:info(?CHAN_TAB, size), emqx_mgmt.erl).
func TestDurableSessionsKeepEveryEvacuationCountingTheClustersOfflineSessions(t *testing.T) {
	h := durableCluster(t, "6.2.2", true, 100)
	if err := h.c.Connect(nodeR, 40, 40); err != nil {
		t.Fatal(err)
	}
	if err := h.c.GoOffline(30); err != nil { // devices that sleep: their sessions wait in durable storage
		t.Fatal(err)
	}
	if got := h.c.Snapshot().DurableSessions; got != 30 {
		t.Fatalf("durable sessions offline = %d, want 30", got)
	}
	h.c.Advance(durableTallyInterval) // the bookkeeper's next count
	evacuateD(h)
	h.c.Advance(30 * time.Second)
	ev := evacuationOf(h, nodeD)
	st := ev["stats"].(map[string]any)
	// D's own clients were evicted (none reconnects here): as durable sessions, they joined the 30.
	if ev["state"] != "evicting_sessions" || num(st["current_connected"]) != 0 || num(st["current_sessions"]) == 0 {
		t.Fatalf(
			"evacuation = %v, want evicting_sessions with 0 connections and the cluster's offline durable sessions",
			ev,
		)
	}
	n := nodeEntry(h, nodeD)
	if num(n["connections"]) != 0 || num(n["live_connections"]) != 0 {
		t.Fatalf(
			"/nodes says D holds %v channels and %v connections, want none",
			n["connections"],
			n["live_connections"],
		)
	}
	h.c.Advance(10 * time.Minute)
	if ev := evacuationOf(h, nodeD); ev["state"] != "evicting_sessions" {
		t.Fatalf(
			"after 10 min the evacuation is %v: durable sessions cannot be evicted, it never finishes",
			ev["state"],
		)
	}
	// Removing D loses nothing: its clients' sessions are in durable storage.
	if err := h.c.StopNode(nodeD); err != nil {
		t.Fatal(err)
	}
	if lost := h.c.LostSessions(); lost != 0 {
		t.Fatalf("stopping an evacuated node with durable sessions lost %d", lost)
	}
}

// The negative control, same world without durable sessions (5.3.2: session_count/0 is
// session_count(any)): offline persistent sessions are channels of D, moved to R, and the
// evacuation ends in prohibiting; stopping D before that loses them.
func TestWithoutDurableSessionsOfflineSessionsAreTheNodesAndMove(t *testing.T) {
	h := durableCluster(t, "5.3.2", true, 100) // the setting does not exist before 5.8
	if err := h.c.GoOffline(30); err != nil {
		t.Fatal(err)
	}
	if n := nodeEntry(h, nodeD); num(n["connections"]) != 100 || num(n["live_connections"]) != 70 {
		t.Fatalf("D's offline sessions are its channels: %v", n)
	}
	evacuateD(h)
	h.advanceUntil(time.Minute, "prohibiting", func() bool { return evacuationOf(h, nodeD)["state"] == "prohibiting" })
	if n := nodeEntry(h, nodeR); num(n["connections"]) != 100 {
		t.Fatalf("R holds %v channels, want D's 100 sessions", n["connections"])
	}

	h = durableCluster(t, "5.3.2", false, 100)
	if err := h.c.GoOffline(30); err != nil {
		t.Fatal(err)
	}
	if err := h.c.StopNode(nodeD); err != nil {
		t.Fatal(err)
	}
	if lost := h.c.LostSessions(); lost != 100 {
		t.Fatalf("lost %d, want all 100 of D's sessions (in memory)", lost)
	}
}

// The count the evacuation reads is the bookkeeper's, refreshed every 5 s: a durable session that
// goes offline counts only after the next tally.
func TestDurableCountIsRefreshedEveryFiveSeconds(t *testing.T) {
	h := durableCluster(t, "5.8.4", true, 0)
	if err := h.c.Connect(nodeR, 10, 10); err != nil {
		t.Fatal(err)
	}
	h.c.Advance(100 * time.Millisecond)
	if err := h.c.GoOffline(10); err != nil {
		t.Fatal(err)
	}
	sessions := func() float64 {
		return num(h.get(nodeD, "/node_eviction/status").body["stats"].(map[string]any)["sessions"])
	}
	evacuateD(h)
	if got := sessions(); got != 0 {
		t.Fatalf("before the tally D's eviction agent counts %v sessions, want 0", got)
	}
	h.c.Advance(durableTallyInterval)
	if got := sessions(); got != 10 {
		t.Fatalf(
			"after the tally D's eviction agent counts %v sessions, want the cluster's 10 offline durable ones",
			got,
		)
	}
}

// global_zone (emqx_mgmt_api_configs.erl) serves emqx_zone_schema.erl's roots; durable_sessions is
// one of them from 5.8 (absent in e5.3.2's roots).
func TestGlobalZoneSaysWhetherSessionsAreDurable(t *testing.T) {
	for _, tc := range []struct {
		version string
		on      bool
		want    any
	}{{"5.3.2", true, nil}, {"5.8.4", false, false}, {"6.2.2", true, true}} {
		h := durableCluster(t, tc.version, tc.on, 0)
		r := h.get(nodeD, "/configs/global_zone")
		ds, _ := r.body["durable_sessions"].(map[string]any)
		var got any
		if ds != nil {
			got = ds["enable"]
		}
		if r.status != http.StatusOK || got != tc.want {
			t.Errorf("%s: durable_sessions.enable = %v (%d), want %v", tc.version, got, r.status, tc.want)
		}
	}
}

// e5.9.0+ apps/emqx_dashboard/src/emqx_dashboard_login_lock.erl: the 5th wrong password within
// unsuccessful_login_interval (300 s) locks the user for unsuccessful_login_lock_duration (600 s);
// sign_token/3 (emqx_dashboard_admin.erl) asks verify/1 first, so while locked even the right
// password gets 401 LOGIN_LOCKED (emqx_dashboard_api.erl, format_login_failed_error). Before 5.9
// nothing locks.
func TestFiveWrongPasswordsLockTheDashboardUserFrom59(t *testing.T) {
	login := func(h *harness, pw string) response {
		req, _ := http.NewRequest(http.MethodPost, h.urls[nodeD]+"/api/v5/login",
			jsonBody(map[string]string{"username": "admin", "password": pw}))
		req.Header.Set("Content-Type", "application/json")
		return h.send(req)
	}
	h := durableCluster(t, "5.9.0", false, 0)
	for i := range 4 {
		expectStatus(t, login(h, "wrong"), http.StatusUnauthorized, "BAD_USERNAME_OR_PWD", "")
		h.c.Advance(time.Duration(i+1) * 10 * time.Second)
	}
	if r := login(h, "public"); r.status != http.StatusOK {
		t.Fatalf("4 failures do not lock: %d %s", r.status, r.raw)
	}
	for range 5 { // a success resets the count
		expectStatus(t, login(h, "wrong"), http.StatusUnauthorized, "BAD_USERNAME_OR_PWD", "")
	}
	expectStatus(t, login(h, "public"), http.StatusUnauthorized, "LOGIN_LOCKED", "Login locked")
	h.c.Advance(emqx.LoginLockDuration - time.Second)
	expectStatus(t, login(h, "public"), http.StatusUnauthorized, "LOGIN_LOCKED", "")
	h.c.Advance(time.Second)
	if r := login(h, "public"); r.status != http.StatusOK {
		t.Fatalf("after 10 min the lock ends: %d %s", r.status, r.raw)
	}

	h = durableCluster(t, "5.8.4", false, 0)
	for range 10 {
		login(h, "wrong")
	}
	if r := login(h, "public"); r.status != http.StatusOK || h.c.LoginLocked("admin") {
		t.Fatalf("5.8 locks nobody: %d %s", r.status, r.raw)
	}
}

// e5.10.4, 6.1.2, 6.2.1+ apps/emqx_management/src/emqx_mgmt_auth.erl, check_scopes: a key with
// scopes reaches /nodes and /load_rebalance (scope cluster_operations,
// emqx_mgmt_api_nodes.erl scopes/0) only with that scope: 403 UNAUTHORIZED_ROLE; a key without
// scopes is unrestricted; earlier releases have no scopes.
func TestAPIKeyScopes(t *testing.T) {
	keys := []APIKey{
		{Key: "none", Secret: "s", Scopes: []string{}},
		{Key: "ops", Secret: "s", Scopes: []string{"cluster_operations"}},
		{Key: "all", Secret: "s"},
	}
	for _, tc := range []struct {
		version string
		none    int
	}{
		{"5.10.3", 200},
		{"5.10.4", 403},
		{"6.0.1", 200},
		{"6.1.1", 200},
		{"6.1.2", 403},
		{"6.2.0", 200},
		{"6.2.1", 403},
		{"6.3.0", 403},
	} {
		h := newHarness(t, Config{Version: tc.version, APIKeys: keys, Nodes: []NodeConfig{{Name: nodeD}}})
		for key, want := range map[string]int{"none": tc.none, "ops": 200, "all": 200} {
			req, _ := http.NewRequest(http.MethodGet, h.urls[nodeD]+"/api/v5/nodes", nil)
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(key+":s")))
			r := h.send(req)
			if r.status != want {
				t.Errorf("%s key %q: /nodes %d, want %d", tc.version, key, r.status, want)
			}
			if want == 403 && r.str("code") != "UNAUTHORIZED_ROLE" {
				t.Errorf("%s key %q: code %q", tc.version, key, r.str("code"))
			}
		}
	}
}

// e5.4.0 (#11971 and the evacuation's allow_connections): during waiting_health_check the node
// still accepts clients; before, the agent refused them from the start.
func TestHealthCheckWaitAcceptsClientsFrom54(t *testing.T) {
	for version, accepts := range map[string]bool{"5.3.2": false, "5.4.0": true, "6.2.2": true} {
		h := durableCluster(t, version, false, 0)
		r := h.post(nodeD, "/evacuation/start", map[string]any{"wait_health_check": 60})
		if r.status != http.StatusOK {
			t.Fatal(r.raw)
		}
		err := h.c.Connect(nodeD, 1, 1)
		if (err == nil) != accepts {
			t.Errorf("%s: connect during the health-check wait: %v, want accepted=%v", version, err, accepts)
		}
	}
}

func jsonBody(v any) *bytes.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// apps/emqx_dashboard/src/emqx_dashboard_api.erl change_pwd/2 and emqx_dashboard_admin.erl
// change_password: a person changes the password; the user's bearer tokens die with the old one
// (emqx_dashboard_token:destroy_by_username/1), and API keys may not change passwords.
func TestChangePasswordEndsTheUsersTokens(t *testing.T) {
	h := durableCluster(t, "6.2.2", false, 0)
	post := func(path, auth string, body any) response {
		req, _ := http.NewRequest(http.MethodPost, h.urls[nodeD]+"/api/v5"+path, jsonBody(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return h.send(req)
	}
	tok := post("/login", "", map[string]string{"username": "admin", "password": "public"}).str("token")
	bearer := "Bearer " + tok
	nodes := func() int {
		req, _ := http.NewRequest(http.MethodGet, h.urls[nodeD]+"/api/v5/nodes", nil)
		req.Header.Set("Authorization", bearer)
		return h.send(req).status
	}
	if tok == "" || nodes() != http.StatusOK {
		t.Fatal("login")
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(apiKey+":"+apiSecret))
	expectStatus(t, post("/users/admin/change_pwd", basic, map[string]string{"old_pwd": "public", "new_pwd": "x"}),
		http.StatusUnauthorized, "API_KEY_NOT_ALLOW", "")
	expectStatus(t, post("/users/admin/change_pwd", bearer, map[string]string{"old_pwd": "wrong", "new_pwd": "x"}),
		http.StatusBadRequest, "ERROR_PWD_NOT_MATCH", "")
	if r := post("/users/admin/change_pwd", bearer, map[string]string{
		"old_pwd": "public",
		"new_pwd": "x",
	}); r.status != http.StatusNoContent {
		t.Fatalf("change_pwd: %d %s", r.status, r.raw)
	}
	if got := nodes(); got != http.StatusUnauthorized {
		t.Fatalf("the old token after a password change: %d, want 401", got)
	}
	expectStatus(t, post("/login", "", map[string]string{"username": "admin", "password": "public"}),
		http.StatusUnauthorized, "BAD_USERNAME_OR_PWD", "")
}

// Before 5.8.4 a session whose channel process died stays in the channel table and session
// eviction tries it again every tick (e5.3.2 and e5.4.0 emqx_eviction_agent.erl: a no_session
// error is logged and the session stays counted); 5.8.4 and 5.9.0 discard it (#14353, #14907).
func TestLostSessionKeepsTheEvacuationBefore584(t *testing.T) {
	for version, ends := range map[string]bool{"5.4.0": false, "5.8.3": false, "5.8.4": true, "6.2.2": true} {
		h := durableCluster(t, version, false, 50)
		h.c.mu.Lock()
		h.c.node(nodeD).phantom = 2
		h.c.mu.Unlock()
		evacuateD(h)
		h.c.Advance(5 * time.Minute)
		ev := evacuationOf(h, nodeD)
		if got := ev["state"] == "prohibiting"; got != ends {
			t.Errorf("%s: evacuation %v after 5 min, want it ended=%v", version, ev, ends)
		}
		if !ends && num(ev["stats"].(map[string]any)["current_sessions"]) != 2 {
			t.Errorf("%s: the stuck count %v, want the 2 lost sessions", version, ev["stats"])
		}
	}
}

// emqx_dashboard_admin.erl (6.2.2): a user with MFA needs a token (BAD_MFA_TOKEN, which does not
// count towards the lock); from 6.2.1 the hardened profile refuses the default password "public"
// (check_unchanged_default_credentials/1, emqx_security_profile.erl).
func TestMFAAndTheHardenedProfileRefuseLogins(t *testing.T) {
	login := func(h *harness, user, pw string) response {
		req, _ := http.NewRequest(http.MethodPost, h.urls[nodeD]+"/api/v5/login",
			jsonBody(map[string]string{"username": user, "password": pw}))
		req.Header.Set("Content-Type", "application/json")
		return h.send(req)
	}
	h := newHarness(
		t,
		Config{Version: "6.2.2", MFA: []string{"ops"}, Users: map[string]string{"admin": "public", "ops": "pw"},
			Nodes: []NodeConfig{{Name: nodeD}}},
	)
	for range 6 {
		expectStatus(t, login(h, "ops", "pw"), http.StatusUnauthorized, "BAD_MFA_TOKEN", "missing_mfa_token")
	}
	if h.c.LoginLocked("ops") {
		t.Fatal("MFA refusals locked the user")
	}
	if r := login(h, "admin", "public"); r.status != http.StatusOK {
		t.Fatalf("the legacy profile takes the default password: %d", r.status)
	}
	for version, refused := range map[string]bool{"6.2.0": false, "6.2.1": true, "6.2.2": true} {
		h := newHarness(t, Config{Version: version, Hardened: true, Nodes: []NodeConfig{{Name: nodeD}}})
		r := login(h, "admin", "public")
		if (r.status == http.StatusUnauthorized) != refused {
			t.Errorf("%s hardened: login with the default password %d, want refused=%v", version, r.status, refused)
		}
		if refused && !strings.Contains(r.str("message"), "Default admin password must be changed") {
			t.Errorf("%s: message %q", version, r.str("message"))
		}
	}
}
