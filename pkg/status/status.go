package status

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Row is one pod and its EMQX node.
type Row struct {
	Pod         string  `json:"pod,omitempty"`
	Node        string  `json:"node,omitempty"`
	Role        string  `json:"role,omitempty"`
	Ready       *bool   `json:"ready,omitempty"`
	NodeStatus  string  `json:"nodeStatus"` // running, stopped, or missing (a pod with no node)
	Connections int64   `json:"connections"`
	Sessions    int64   `json:"sessions"`
	State       string  `json:"state,omitempty"` // evacuation state, or donor/recipient/coordinator
	Share       float64 `json:"share"`           // of the cluster's live connections, 0..1
	// For -o wide: EMQX's release and uptime on the node, the pod's Kubernetes node and IP.
	Version  string `json:"version,omitempty"`
	Uptime   int64  `json:"uptimeSeconds,omitempty"`
	KubeNode string `json:"kubeNode,omitempty"`
	PodIP    string `json:"podIP,omitempty"`
}

// Rebalance is a running rebalance, with pods named where known.
type Rebalance struct {
	Coordinator    string   `json:"coordinator"`
	State          string   `json:"state"`
	Donors         []string `json:"donors"`
	Recipients     []string `json:"recipients"`
	ConnectionGoal *float64 `json:"connectionGoal,omitempty"`
	DonorConnAvg   *float64 `json:"donorConnAvg,omitempty"`
}

// Report is the whole status.
type Report struct {
	Cluster     string      `json:"cluster,omitempty"`
	Namespace   string      `json:"namespace,omitempty"`
	Rows        []Row       `json:"nodes"`
	Connections int64       `json:"connections"`
	Sessions    int64       `json:"sessions"`
	Rebalances  []Rebalance `json:"rebalances"`
	// Warning explains a pod with no EMQX node (a single-node licence, failed discovery).
	Warning string `json:"warning,omitempty"`
	// WebhookAccess is what emqx-webhook last found when it tried this cluster's API, when that
	// was not "ok": its removals would not be evacuated ("credentials-rejected <time>: …").
	WebhookAccess string `json:"webhookAccess,omitempty"`
	// AutoRebalance is emqx-webhook's automatic rebalance of this cluster: the one running, or
	// how the last one ended.
	AutoRebalance string `json:"autoRebalance,omitempty"`
}

// Build assembles the report from /api/v5/nodes, global_status and the cluster's pods (none in
// direct mode, where rows are nodes only).
func Build(nodes []emqx.Node, g emqx.GlobalStatus, pods []corev1.Pod, durable evacuation.Durability) Report {
	r := Report{Rows: []Row{}, Rebalances: []Rebalance{}} // empty lists print as [], not null
	roles := map[string]string{}
	for _, rb := range g.Rebalances {
		for _, d := range rb.Donors {
			roles[d] = "donor"
		}
		for _, rc := range rb.Recipients {
			roles[rc] = "recipient"
		}
		if _, ok := roles[rb.CoordinatorNode]; !ok {
			roles[rb.CoordinatorNode] = "coordinator"
		}
	}
	for _, e := range g.Evacuations {
		roles[e.Node] = "evacuation " + e.State
		node, _ := cluster.NodeByName(nodes, e.Node)
		switch {
		case evacuation.SafeToRemove(e, node, durable):
			// With durable sessions, EMQX's own count may stay above 0 for good (pkg/evacuation).
			roles[e.Node] = "evacuated"
		case e.State == emqx.EvacuationProhibiting:
			roles[e.Node] = "prohibiting"
		}
	}
	podName := func(node string) string {
		if p, ok := cluster.PodOfNode(pods, node); ok {
			return p.Name
		}
		return ""
	}
	matched := map[string]bool{}
	for _, n := range nodes {
		row := Row{Node: n.Node, Role: n.Role, NodeStatus: n.NodeStatus, State: roles[n.Node], Version: n.Version}
		if n.Running() {
			row.Connections, row.Sessions = n.LiveConnections, n.Connections
			row.Uptime = n.Uptime / 1000 // EMQX counts milliseconds
		}
		if p, ok := cluster.PodOfNode(pods, n.Node); ok {
			row.Pod, row.KubeNode, row.PodIP = p.Name, p.Spec.NodeName, p.Status.PodIP
			if strings.HasPrefix(row.State, "evacuation ") &&
				strings.HasSuffix(p.Annotations[cluster.AnnSessionsLeft], cluster.StalledSuffix) {
				row.State += " (stalled)" // emqx-webhook found its session count unmoved for --stall-after
			}
			ready := cluster.Ready(p)
			row.Ready = &ready
			matched[p.Name] = true
		}
		r.Connections += row.Connections
		r.Sessions += row.Sessions
		r.Rows = append(r.Rows, row)
	}
	for _, p := range pods {
		if !matched[p.Name] {
			ready := cluster.Ready(&p)
			r.Rows = append(r.Rows, Row{Pod: p.Name, Ready: &ready, NodeStatus: "missing", KubeNode: p.Spec.NodeName,
				PodIP: p.Status.PodIP})
		}
	}
	running := 0
	for i := range pods {
		if cluster.Running(&pods[i]) {
			running++
		}
	}
	r.Warning = cluster.MissingNodesHint(nodes, running)
	for i := range r.Rows {
		if r.Connections > 0 {
			r.Rows[i].Share = float64(r.Rows[i].Connections) / float64(r.Connections)
		}
	}
	sort.SliceStable(r.Rows, func(i, j int) bool { return key(r.Rows[i]) < key(r.Rows[j]) })
	for _, rb := range g.Rebalances {
		v := Rebalance{Coordinator: label(rb.CoordinatorNode, podName), State: rb.State,
			ConnectionGoal: rb.ConnectionGoal, DonorConnAvg: rb.DonorConnAvg}
		for _, d := range rb.Donors {
			v.Donors = append(v.Donors, label(d, podName))
		}
		for _, d := range rb.Recipients {
			v.Recipients = append(v.Recipients, label(d, podName))
		}
		r.Rebalances = append(r.Rebalances, v)
	}
	return r
}

func key(r Row) string {
	if r.Pod != "" {
		return r.Pod
	}
	return r.Node
}

func label(node string, podName func(string) string) string {
	if p := podName(node); p != "" {
		return p
	}
	return node
}
