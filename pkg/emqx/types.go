package emqx

// Node is one entry of GET /api/v5/nodes. A stopped core node carries only Node, NodeStatus and Role.
type Node struct {
	Node            string  `json:"node"`
	NodeStatus      string  `json:"node_status"`
	Role            string  `json:"role,omitempty"`
	Edition         string  `json:"edition,omitempty"`
	Version         string  `json:"version,omitempty"`
	OTPRelease      string  `json:"otp_release,omitempty"`
	Uptime          int64   `json:"uptime,omitempty"`
	Connections     int64   `json:"connections"`
	LiveConnections int64   `json:"live_connections"`
	ClusterSessions int64   `json:"cluster_sessions,omitempty"`
	Load1           float64 `json:"load1,omitempty"`
	Load5           float64 `json:"load5,omitempty"`
	Load15          float64 `json:"load15,omitempty"`
}

// Zone is what is read of GET /configs/global_zone.
type Zone struct {
	// DurableSessions is nil before 5.8, which has no such setting.
	DurableSessions *struct {
		Enable bool `json:"enable"`
	} `json:"durable_sessions,omitempty"`
}

// Durable reports durable_sessions.enable.
func (z Zone) Durable() bool { return z.DurableSessions != nil && z.DurableSessions.Enable }

// Running reports whether the node is up.
func (n Node) Running() bool { return n.NodeStatus == NodeRunning }

// Node status and role values.
const (
	NodeRunning   = "running"
	NodeStopped   = "stopped"
	RoleCore      = "core"
	RoleReplicant = "replicant"
)

// Process values of a local status document.
const (
	ProcessEvacuation = "evacuation"
	ProcessRebalance  = "rebalance"
	ProcessPurge      = "purge"
)

// Evacuation states (API.md §5.1).
const (
	EvacuationWaitingHealthCheck = "waiting_health_check"
	EvacuationEvictingConns      = "evicting_conns"
	EvacuationWaitingTakeover    = "waiting_takeover"
	EvacuationEvictingSessions   = "evicting_sessions"
	EvacuationProhibiting        = "prohibiting"
)

// Rebalance states (API.md §6.1). They differ from the evacuation names.
const (
	RebalanceWaitHealthCheck  = "wait_health_check"
	RebalanceEvictingConns    = "evicting_conns"
	RebalanceWaitTakeover     = "wait_takeover"
	RebalanceEvictingSessions = "evicting_sessions"
)

// StatusDisabled is the status of a node with nothing running.
const StatusDisabled = "disabled"

// Stats are the counters of a local status or evacuation document. Evacuation counters are updated
// only by eviction ticks; rebalance donor counters current_* are live.
type Stats struct {
	InitialConnected            int64  `json:"initial_connected"`
	CurrentConnected            int64  `json:"current_connected"`
	InitialSessions             int64  `json:"initial_sessions"`
	CurrentSessions             int64  `json:"current_sessions"`
	CurrentDisconnectedSessions *int64 `json:"current_disconnected_sessions,omitempty"`
}

// LocalStatus is GET /load_rebalance/status: the state of the node that served the request.
type LocalStatus struct {
	Status                       string   `json:"status"`
	Process                      string   `json:"process,omitempty"`
	State                        string   `json:"state,omitempty"`
	CoordinatorNode              string   `json:"coordinator_node,omitempty"`
	ConnectionEvictionRate       int64    `json:"connection_eviction_rate,omitempty"`
	ConnectionEvictionRPCTimeout *int64   `json:"connection_eviction_rpc_timeout,omitempty"`
	SessionEvictionRate          int64    `json:"session_eviction_rate,omitempty"`
	SessionEvictionRPCTimeout    *int64   `json:"session_eviction_rpc_timeout,omitempty"`
	PurgeRate                    int64    `json:"purge_rate,omitempty"`
	ConnectionGoal               *float64 `json:"connection_goal,omitempty"`
	SessionGoal                  *float64 `json:"session_goal,omitempty"`
	DisconnectedSessionGoal      *float64 `json:"disconnected_session_goal,omitempty"`
	SessionRecipients            []string `json:"session_recipients,omitempty"`
	Recipients                   []string `json:"recipients,omitempty"`
	Stats                        *Stats   `json:"stats,omitempty"`
}

// Enabled reports whether anything (evacuation, rebalance donor, purge) runs on the node.
func (s LocalStatus) Enabled() bool { return s.Status == "enabled" }

// Evacuation is one entry of global_status.evacuations.
type Evacuation struct {
	Node                   string   `json:"node"`
	State                  string   `json:"state"`
	ConnectionEvictionRate int64    `json:"connection_eviction_rate"`
	SessionEvictionRate    int64    `json:"session_eviction_rate"`
	ConnectionGoal         float64  `json:"connection_goal"`
	SessionGoal            float64  `json:"session_goal"`
	SessionRecipients      []string `json:"session_recipients"`
	Stats                  Stats    `json:"stats"`
}

// Done reports EMQX's own completion (API.md §5.4): prohibiting,
// with no connections and no sessions left.
func (e Evacuation) Done() bool {
	return e.State == EvacuationProhibiting && e.Stats.CurrentConnected == 0 && e.Stats.CurrentSessions == 0
}

// Rebalance is one entry of global_status.rebalances: one per coordinator.
type Rebalance struct {
	Node                         string   `json:"node"`
	CoordinatorNode              string   `json:"coordinator_node"`
	State                        string   `json:"state"`
	ConnectionEvictionRate       int64    `json:"connection_eviction_rate"`
	ConnectionEvictionRPCTimeout *int64   `json:"connection_eviction_rpc_timeout,omitempty"`
	SessionEvictionRate          int64    `json:"session_eviction_rate"`
	SessionEvictionRPCTimeout    *int64   `json:"session_eviction_rpc_timeout,omitempty"`
	Donors                       []string `json:"donors"`
	Recipients                   []string `json:"recipients"`
	ConnectionGoal               *float64 `json:"connection_goal,omitempty"`
	DonorConnAvg                 *float64 `json:"donor_conn_avg,omitempty"`
	DisconnectedSessionGoal      *float64 `json:"disconnected_session_goal,omitempty"`
	DonorSessAvg                 *float64 `json:"donor_sess_avg,omitempty"`
}

// Purge is one entry of global_status.purges.
type Purge struct {
	Node        string  `json:"node"`
	State       string  `json:"state"`
	PurgeRate   int64   `json:"purge_rate"`
	SessionGoal float64 `json:"session_goal"`
	Stats       Stats   `json:"stats"`
}

// GlobalStatus is GET /load_rebalance/global_status: the cluster-wide view. A finished, stopped or
// aborted rebalance is simply absent; evacuations stay listed until stopped.
type GlobalStatus struct {
	Evacuations []Evacuation `json:"evacuations"`
	Purges      []Purge      `json:"purges"`
	Rebalances  []Rebalance  `json:"rebalances"`
}

// Unfinished reports an evacuation EMQX does not call done (see Evacuation.Done): only then does
// its session count need reading with care (durable sessions, 5.8+).
func (g *GlobalStatus) Unfinished() bool {
	for _, e := range g.Evacuations {
		if !e.Done() {
			return true
		}
	}
	return false
}

// Evacuation returns the evacuation of node, if one is listed.
func (g *GlobalStatus) Evacuation(node string) (Evacuation, bool) {
	for _, e := range g.Evacuations {
		if e.Node == node {
			return e, true
		}
	}
	return Evacuation{}, false
}

// Rebalance returns the rebalance coordinated by node, if one is listed.
func (g *GlobalStatus) Rebalance(coordinator string) (Rebalance, bool) {
	for _, r := range g.Rebalances {
		if r.Node == coordinator || r.CoordinatorNode == coordinator {
			return r, true
		}
	}
	return Rebalance{}, false
}
