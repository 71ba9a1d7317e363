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
				"alarm": map[string]any{
					"actions":         []string{"log", "publish"},
					"size_limit":      1000,
					"validity_period": "24h",
				},
				"dashboard": map[string]any{
					"listeners":        map[string]any{"http": map[string]any{"bind": 18083}},
					"default_password": "******",
				},
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
			writeError(
				w,
				r,
				&apiError{http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("mode %q: want merge or replace", mode)},
			)
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

// globalZoneDoc is GET /api/v5/configs/global_zone (emqx_mgmt_api_configs.erl): the zone roots of
// emqx_zone_schema.erl with their values; durable_sessions is one of them from 5.8.
func (c *Cluster) globalZoneDoc() map[string]any {
	doc := map[string]any{
		"mqtt": map[string]any{
			"max_packet_size":         "1MB",
			"session_expiry_interval": "2h",
			"max_inflight":            32,
		},
		"stats":               map[string]any{"enable": true},
		"flapping_detect":     map[string]any{"enable": false, "max_count": 15, "window_time": "1m", "ban_time": "5m"},
		"force_shutdown":      map[string]any{"enable": true, "max_mailbox_size": 1000, "max_heap_size": "32MB"},
		"conn_congestion":     map[string]any{"enable_alarm": true, "min_alarm_sustain_duration": "1m"},
		"force_gc":            map[string]any{"enable": true, "count": 16000, "bytes": "16MB"},
		"overload_protection": map[string]any{"enable": false, "backoff_delay": 1, "backoff_gc": false},
	}
	if c.version.HasDurableSessions() {
		doc["durable_sessions"] = map[string]any{
			"enable": c.cfg.DurableSessions, "batch_size": 100, "idle_poll_interval": "10s",
			"heartbeat_interval": "5000ms", "session_gc_interval": "10m", "message_retention_period": "1d",
			"subscription_count_refresh_interval":         "5s",
			"disconnected_session_count_refresh_interval": durableTallyInterval.String(),
		}
	}
	return doc
}
