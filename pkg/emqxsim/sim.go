package emqxsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// simPrefix holds the simulator-only endpoints, deliberately outside /api/v5: EMQX has nothing
// like them. They need no credentials; serve the simulator on loopback or a private namespace.
//
//	GET  /sim/v1/stats                      lost sessions, clients, per-node counts
//	POST /sim/v1/connect                    {"node": "" (spread) or name, "clients": N, "persistent": M}
//	POST /sim/v1/disconnect                 {"clients": N} N clients leave for good (DISCONNECT, expiry 0);
//	                                        with "keep_session": true, N persistent clients go offline
//	                                        and their sessions wait for them (in durable storage when
//	                                        durable sessions are on)
//	POST /sim/v1/nodes                      {"name": ..., "role": ...} adds a running node
//	POST /sim/v1/nodes/{name}/stop          the pod is killed: sessions are lost
//	POST /sim/v1/nodes/{name}/start         ?keep_data=true resumes a persisted evacuation
//	POST /sim/v1/nodes/{name}/restart       ?keep_data=true|false
//	POST /sim/v1/nodes/{name}/remove        gone for good
//	POST /sim/v1/nodes/{name}/ready         ?ready=true|false (pod readiness)
//	POST /sim/v1/nodes/{name}/lost-sessions {"sessions": N} channels whose process died (EMQX before
//	                                        5.8.4 cannot evict them: its evacuation never ends)
//	POST /sim/v1/api                        ?down=true|false: every node's /api/v5 stops answering
const simPrefix = "/sim/v1/"

// SimHandler serves only the simulator endpoints, on no node: an admin address that stays up while
// nodes come and go.
func (c *Cluster) SimHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"code": "SIM_ERROR", "message": "unreadable body"})
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.serveSim(w, r, raw)
	})
}

func (c *Cluster) serveSim(w http.ResponseWriter, r *http.Request, raw []byte) {
	p := strings.TrimPrefix(r.URL.Path, simPrefix)
	fail := func(status int, msg string) {
		writeJSON(w, status, map[string]string{"code": "SIM_ERROR", "message": msg})
	}
	if p == "stats" {
		if r.Method != http.MethodGet {
			fail(http.StatusMethodNotAllowed, "use GET")
			return
		}
		writeJSON(w, http.StatusOK, c.snapshotLocked())
		return
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "use POST")
		return
	}
	switch {
	case p == "connect":
		var req struct {
			Node       string `json:"node"`
			Clients    int64  `json:"clients"`
			Persistent *int64 `json:"persistent"`
		}
		if err := json.Unmarshal(raw, &req); err != nil {
			fail(http.StatusBadRequest, "body: "+err.Error())
			return
		}
		persistent := req.Clients
		if req.Persistent != nil {
			persistent = *req.Persistent
		}
		if err := c.connectLocked(req.Node, req.Clients, persistent); err != nil {
			fail(http.StatusConflict, err.Error())
			return
		}
	case p == "disconnect":
		var req struct {
			Clients     int64 `json:"clients"`
			KeepSession bool  `json:"keep_session"`
		}
		if err := json.Unmarshal(raw, &req); err != nil {
			fail(http.StatusBadRequest, "body: "+err.Error())
			return
		}
		if err := c.disconnectLocked(req.Clients, req.KeepSession); err != nil {
			fail(http.StatusConflict, err.Error())
			return
		}
	case p == "api":
		c.apiDown = r.URL.Query().Get("down") == "true"
	case p == "nodes":
		var req NodeConfig
		if err := json.Unmarshal(raw, &req); err != nil {
			fail(http.StatusBadRequest, "body: "+err.Error())
			return
		}
		if _, err := c.addNodeLocked(req); err != nil {
			fail(http.StatusConflict, err.Error())
			return
		}
	case strings.HasPrefix(p, "nodes/"):
		rest := strings.TrimPrefix(p, "nodes/")
		i := strings.LastIndex(rest, "/")
		if i <= 0 {
			fail(http.StatusNotFound, "want /sim/v1/nodes/{name}/{action}")
			return
		}
		n := c.node(rest[:i])
		if n == nil {
			fail(http.StatusNotFound, "no node "+rest[:i])
			return
		}
		q := r.URL.Query()
		keep := q.Get("keep_data") == "true"
		var err error
		switch rest[i+1:] {
		case "stop":
			n.stop()
		case "start":
			err = n.start(keep)
		case "restart":
			n.stop()
			err = n.start(keep)
		case "remove":
			c.removeLocked(n)
		case "ready":
			n.ready = q.Get("ready") != "false"
		case "lost-sessions":
			var req struct {
				Sessions int64 `json:"sessions"`
			}
			if json.Unmarshal(raw, &req) != nil || req.Sessions < 0 {
				fail(http.StatusBadRequest, `want {"sessions": N}`)
				return
			}
			n.phantom += req.Sessions
		default:
			fail(http.StatusNotFound, "unknown action "+rest[i+1:])
			return
		}
		if err != nil {
			fail(http.StatusConflict, err.Error())
			return
		}
	default:
		fail(http.StatusNotFound, "unknown simulator endpoint "+r.URL.Path)
		return
	}
	writeJSON(w, http.StatusOK, c.snapshotLocked())
}
