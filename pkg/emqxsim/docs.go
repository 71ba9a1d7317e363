package emqxsim

type nodeDoc struct {
	Node            string    `json:"node"`
	NodeStatus      string    `json:"node_status"`
	Role            string    `json:"role"`
	Edition         string    `json:"edition,omitempty"`
	Version         string    `json:"version,omitempty"`
	OTPRelease      string    `json:"otp_release,omitempty"`
	Uptime          *int64    `json:"uptime,omitempty"`
	Connections     *int64    `json:"connections,omitempty"`
	LiveConnections *int64    `json:"live_connections,omitempty"`
	ClusterSessions *int64    `json:"cluster_sessions,omitempty"`
	Load1           *erlFloat `json:"load1,omitempty"`
	Load5           *erlFloat `json:"load5,omitempty"`
	Load15          *erlFloat `json:"load15,omitempty"`
	MaxFDs          *int64    `json:"max_fds,omitempty"`
	MemoryTotal     string    `json:"memory_total,omitempty"`
	MemoryUsed      string    `json:"memory_used,omitempty"`
	SysPath         string    `json:"sys_path,omitempty"`
	LogPath         string    `json:"log_path,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func (c *Cluster) runningNodeDoc(n *Node, clusterSessions int64) nodeDoc {
	zero := erlFloat(0)
	return nodeDoc{
		Node: n.name, NodeStatus: "running", Role: n.role, Edition: c.cfg.Edition, Version: c.version.String(),
		OTPRelease: "27.2-3/15.2", Uptime: ptr(c.now.Sub(n.booted).Milliseconds()),
		Connections: ptr(n.sessions()), LiveConnections: ptr(n.live()), ClusterSessions: ptr(clusterSessions),
		Load1: &zero, Load5: &zero, Load15: &zero, MaxFDs: ptr(int64(1048576)),
		MemoryTotal: "7.63G", MemoryUsed: "512.00M", SysPath: "/opt/emqx", LogPath: "/opt/emqx/log",
	}
}

func (c *Cluster) clusterSessions() int64 {
	var s int64
	for _, n := range c.running() {
		s += n.sessions()
	}
	return s
}

// nodesDoc is GET /nodes: running nodes, then stubs for stopped core nodes (replicants vanish).
func (c *Cluster) nodesDoc() []nodeDoc {
	cs := c.clusterSessions()
	out := []nodeDoc{}
	for _, n := range c.running() {
		out = append(out, c.runningNodeDoc(n, cs))
	}
	for _, n := range c.nodes {
		if !n.running && n.role == "core" {
			out = append(out, nodeDoc{Node: n.name, NodeStatus: "stopped", Role: "core"})
		}
	}
	return out
}

func (c *Cluster) nodeDoc(name string) (any, *apiError) {
	n, err := c.nodeByPath(name)
	if err != nil {
		return nil, err
	}
	return c.runningNodeDoc(n, c.clusterSessions()), nil
}

type evacStats struct {
	InitialConnected int64 `json:"initial_connected"`
	CurrentConnected int64 `json:"current_connected"`
	InitialSessions  int64 `json:"initial_sessions"`
	CurrentSessions  int64 `json:"current_sessions"`
}

type evacDoc struct {
	Node                   string    `json:"node,omitempty"`
	Status                 string    `json:"status,omitempty"`
	Process                string    `json:"process,omitempty"`
	State                  string    `json:"state"`
	ConnectionEvictionRate int64     `json:"connection_eviction_rate"`
	SessionEvictionRate    int64     `json:"session_eviction_rate"`
	ConnectionGoal         int64     `json:"connection_goal"`
	SessionGoal            int64     `json:"session_goal"`
	SessionRecipients      []string  `json:"session_recipients"`
	Stats                  evacStats `json:"stats"`
}

func (e *evacuation) doc() evacDoc {
	recipients := []string{}
	for _, t := range e.targets() {
		recipients = append(recipients, t.name)
	}
	return evacDoc{
		State: e.state, ConnectionEvictionRate: e.opts.connRate, SessionEvictionRate: e.opts.sessRate,
		SessionRecipients: recipients,
		Stats: evacStats{
			InitialConnected: e.initialConns,
			CurrentConnected: e.currentConns,
			InitialSessions:  e.initialSess,
			CurrentSessions:  e.currentSess,
		},
	}
}

type donorStats struct {
	InitialConnected            int64 `json:"initial_connected"`
	InitialSessions             int64 `json:"initial_sessions"`
	CurrentConnected            int64 `json:"current_connected"`
	CurrentSessions             int64 `json:"current_sessions"`
	CurrentDisconnectedSessions int64 `json:"current_disconnected_sessions"`
}

type rebalanceDoc struct {
	Node                         string      `json:"node,omitempty"`
	Status                       string      `json:"status,omitempty"`
	Process                      string      `json:"process,omitempty"`
	State                        string      `json:"state"`
	CoordinatorNode              string      `json:"coordinator_node"`
	ConnectionEvictionRate       int64       `json:"connection_eviction_rate"`
	ConnectionEvictionRPCTimeout *int64      `json:"connection_eviction_rpc_timeout,omitempty"`
	SessionEvictionRate          int64       `json:"session_eviction_rate"`
	SessionEvictionRPCTimeout    *int64      `json:"session_eviction_rpc_timeout,omitempty"`
	Donors                       []string    `json:"donors,omitempty"`
	Recipients                   []string    `json:"recipients"`
	ConnectionGoal               *erlFloat   `json:"connection_goal,omitempty"`
	DonorConnAvg                 *erlFloat   `json:"donor_conn_avg,omitempty"`
	DisconnectedSessionGoal      *erlFloat   `json:"disconnected_session_goal,omitempty"`
	DonorSessAvg                 *erlFloat   `json:"donor_sess_avg,omitempty"`
	Stats                        *donorStats `json:"stats,omitempty"`
}

func names(nodes []*Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.name
	}
	return out
}

func (co *coordinator) base() rebalanceDoc {
	d := rebalanceDoc{
		State: co.state, CoordinatorNode: co.n.name,
		ConnectionEvictionRate: co.opts.connRate, SessionEvictionRate: co.opts.sessRate,
		Recipients: names(co.recipients),
	}
	if co.n.c.version.AtLeast(5, 9, 0) {
		d.ConnectionEvictionRPCTimeout, d.SessionEvictionRPCTimeout = ptr(co.opts.connRPC), ptr(co.opts.sessRPC)
	}
	return d
}

// globalDoc is the coordinator's entry in global_status.rebalances: no stats.
func (co *coordinator) globalDoc() rebalanceDoc {
	d := co.base()
	d.Node = co.n.name
	d.Donors = names(co.donors)
	d.ConnectionGoal, d.DonorConnAvg = erlFloatPtr(co.connGoal), erlFloatPtr(co.donorConnAvg)
	d.DisconnectedSessionGoal, d.DonorSessAvg = erlFloatPtr(co.sessGoal), erlFloatPtr(co.donorSessAvg)
	return d
}

// donorDoc is a donor's local status: live counters read now, initial ones from the start.
func (co *coordinator) donorDoc(n *Node) rebalanceDoc {
	d := co.base()
	d.Status, d.Process = "enabled", "rebalance"
	d.ConnectionGoal = erlFloatPtr(co.connGoal)
	d.DisconnectedSessionGoal = erlFloatPtr(co.sessGoal)
	init := co.initial[n]
	d.Stats = &donorStats{
		InitialConnected: init.conns, InitialSessions: init.sessions,
		CurrentConnected: n.live(), CurrentSessions: n.evictionSessions(), CurrentDisconnectedSessions: n.disc(),
	}
	return d
}

// localStatusDoc resolves evacuation → purge → rebalance donor → disabled (API.md §3.2).
func (n *Node) localStatusDoc() any {
	switch {
	case n.evac != nil:
		d := n.evac.doc()
		d.Status, d.Process = "enabled", "evacuation"
		return d
	case n.donorOf != nil:
		return n.donorOf.donorDoc(n)
	}
	return map[string]string{"status": "disabled"}
}

type globalDoc struct {
	Evacuations []evacDoc      `json:"evacuations"`
	Purges      []any          `json:"purges"`
	Rebalances  []rebalanceDoc `json:"rebalances"`
}

func (c *Cluster) globalStatusDoc() globalDoc {
	g := globalDoc{Evacuations: []evacDoc{}, Purges: []any{}, Rebalances: []rebalanceDoc{}}
	for _, n := range c.running() {
		if n.evac != nil {
			d := n.evac.doc()
			d.Node = n.name
			g.Evacuations = append(g.Evacuations, d)
		}
		if n.coord != nil {
			g.Rebalances = append(g.Rebalances, n.coord.globalDoc())
		}
	}
	return g
}

func (n *Node) evictionStatusDoc() any {
	if n.agentKind == "" {
		return map[string]string{"status": "disabled"}
	}
	return map[string]any{
		"status": "enabled",
		"stats":  map[string]int64{"connections": n.live(), "sessions": n.evictionSessions()},
	}
}
