package emqxsim

import (
	"fmt"
	"net/http"
	"strings"
)

// The configuration endpoints emqx-operator uses (pkg/emqx/API.md, "Configuration"): GET
// /api/v5/configs answers the whole configuration as HOCON text unless JSON is asked for (then a
// few root keys, secrets masked), and PUT ?mode=merge|replace takes HOCON text. Real EMQX's text
// carries secrets in clear; the simulator serves a plausible configuration of its own.

// baseConfig is the configuration a node boots with, as HOCON.
func (c *Cluster) baseConfig() string {
	return `node {
  cookie = "emqx-sim-cookie"
  data_dir = "data"
}
cluster {
  name = emqxcl
  discovery_strategy = dns
}
dashboard {
  listeners {
    http { bind = 18083 }
  }
}
listeners {
  tcp { default { bind = "0.0.0.0:1883", max_connections = infinity } }
  ssl { default { bind = "0.0.0.0:8883", max_connections = infinity } }
  ws { default { bind = "0.0.0.0:8083", max_connections = infinity } }
  wss { default { bind = "0.0.0.0:8084", max_connections = infinity } }
}
log { console { level = warning } }
sysmon { os { cpu_check_interval = 60s } }
`
}

// configText is the current configuration as HOCON: the boot configuration, then every update
// merged in order (later keys win in HOCON). Caller holds mu.
func (c *Cluster) configText() string {
	if c.config == "" {
		c.config = c.baseConfig()
	}
	return c.config
}

func (c *Cluster) serveConfigs(w http.ResponseWriter, r *http.Request, raw []byte) {
	switch r.Method {
	case http.MethodGet:
		if strings.HasPrefix(r.Header.Get("Accept"), "application/json") {
			writeJSON(w, http.StatusOK, map[string]any{
				"alarm":         map[string]any{"actions": []string{"log", "publish"}, "size_limit": 1000, "validity_period": "24h"},
				"dashboard":     map[string]any{"listeners": map[string]any{"http": map[string]any{"bind": 18083}}, "default_password": "******"},
				"file_transfer": map[string]any{"enable": false},
				"log":           map[string]any{"console": map[string]any{"level": "warning"}},
				"sys_topics":    map[string]any{"sys_msg_interval": "1m"},
				"sysmon":        map[string]any{"os": map[string]any{"cpu_check_interval": "60s"}},
			})
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(c.configText()))
	case http.MethodPut:
		mode := r.URL.Query().Get("mode")
		if mode == "" {
			mode = "merge"
		}
		text := strings.TrimSpace(string(raw))
		switch {
		case mode != "merge" && mode != "replace":
			writeError(w, r, &apiError{http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("mode %q: want merge or replace", mode)})
			return
		case text == "" || strings.Count(text, "{") != strings.Count(text, "}"):
			writeError(w, r, &apiError{http.StatusBadRequest, "BAD_REQUEST", "invalid HOCON"})
			return
		}
		if mode == "replace" {
			c.config = c.baseConfig() + text + "\n"
		} else {
			c.config = c.configText() + text + "\n"
		}
		writeJSON(w, http.StatusOK, struct{}{})
	default:
		writeError(w, r, &apiError{http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Method Not Allowed"})
	}
}
