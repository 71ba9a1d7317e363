package observe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// EMQX is what the webhook asks of an EMQX cluster.
type EMQX interface {
	Nodes(ctx context.Context) ([]emqx.Node, error)
	GlobalStatus(ctx context.Context) (emqx.GlobalStatus, error)
	GlobalZone(ctx context.Context) (emqx.Zone, error)
	Sites(ctx context.Context) ([]string, error)
	Site(ctx context.Context, id string) (emqx.Site, error)
	Storages(ctx context.Context) ([]string, error)
	Storage(ctx context.Context, db string) (emqx.Storage, error)
	SetReplicaSites(ctx context.Context, db string, sites []string) error
	ForgetSite(ctx context.Context, site string) error
	StartEvacuation(ctx context.Context, node string, req emqx.EvacuationRequest) error
	StopEvacuation(ctx context.Context, node string) error
	ForceLeave(ctx context.Context, node string) error
	StartRebalance(ctx context.Context, coordinator string, req emqx.RebalanceRequest) error
	StopRebalance(ctx context.Context, coordinator string) error
}

// Connector returns a client for the EMQX cluster a pod belongs to.
type Connector interface {
	Connect(ctx context.Context, pod *corev1.Pod) (EMQX, error)
	// Forget drops a cached connection that failed.
	Forget(pod *corev1.Pod)
	// Prune drops what is kept for EMQX clusters live does not name (by ClusterKey): they are gone.
	Prune(live map[string]bool)
}

// PodConnector reaches EMQX at pod IPs (the webhook runs inside the cluster), with the
// credentials the cluster carries, and keeps one working connection per EMQX cluster.
type PodConnector struct {
	Matcher cluster.Matcher      // which pods and StatefulSets are EMQX
	Reader  client.Reader        // cached reads of pods and workloads
	Secrets kubernetes.Interface // uncached reads of Secrets (no list/watch on Secrets)
	Timeout time.Duration        // per EMQX request
	// SharedFor lets the reads of one EMQX cluster that arrive within it share one answer
	// (emqx.WithSharedReads), timed on Clock; 0: every read asks.
	SharedFor time.Duration
	Clock     clock.Clock
	// Rejected keeps refused credentials from being tried again until they change: the webhook
	// connects at every retried removal, and five failed logins lock a dashboard user (EMQX 5.9+).
	Rejected cluster.Rejected

	mu    sync.Mutex
	conns map[string]*cluster.Conn
}

// ClusterKey names the EMQX cluster of a pod: its namespace and install instance.
func ClusterKey(pod *corev1.Pod) string { return Key(pod.Namespace, pod.Labels) }

// Key names the EMQX cluster of the pods labelled l in namespace ns (a StatefulSet's template's).
func Key(ns string, l map[string]string) string { return ns + "/" + cluster.Instance(l) }

// Connect implements Connector.
func (c *PodConnector) Connect(ctx context.Context, pod *corev1.Pod) (EMQX, error) {
	key := ClusterKey(pod)
	c.mu.Lock()
	conn := c.conns[key]
	c.mu.Unlock()
	if conn != nil && c.stillThrough(ctx, conn) {
		return conn, nil
	}
	cl, err := c.cluster(ctx, pod)
	if err != nil {
		return nil, err
	}
	access := cluster.Access{
		Kube: c.Secrets, Rejected: &c.Rejected,
		// No retries: the decision's deadline is short, and the caller retries the whole request.
		Options: []emqx.Option{emqx.WithGETRetries(1, 0)},
		Forward: func(_ context.Context, p *corev1.Pod, port int) (string, func(), error) {
			return "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)), func() {}, nil
		},
	}
	if c.Timeout > 0 {
		access.Options = append(access.Options, emqx.WithHTTPClient(&http.Client{Timeout: c.Timeout}))
	}
	if c.SharedFor > 0 {
		access.Options = append(access.Options, emqx.WithClock(c.Clock), emqx.WithSharedReads(c.SharedFor))
	}
	// Prefer any other pod: the one being removed may go away under us.
	conn, err = cluster.Connect(ctx, access, cl, pod.Name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.conns == nil {
		c.conns = map[string]*cluster.Conn{}
	}
	c.conns[key] = conn
	c.mu.Unlock()
	return conn, nil
}

// stillThrough: the pod the connection goes through is still the same pod at the same IP (its IP
// could be another pod's by now, which must get neither the credentials nor our trust).
func (c *PodConnector) stillThrough(ctx context.Context, conn *cluster.Conn) bool {
	if conn.Through == nil {
		return false
	}
	var live corev1.Pod
	if err := c.Reader.Get(ctx, client.ObjectKeyFromObject(conn.Through), &live); err != nil {
		return false
	}
	return conn.StillThrough(&live)
}

// Forget implements Connector.
func (c *PodConnector) Forget(pod *corev1.Pod) {
	c.mu.Lock()
	delete(c.conns, ClusterKey(pod))
	c.mu.Unlock()
}

// Prune implements Connector: the connections and remembered refusals of clusters that are gone.
func (c *PodConnector) Prune(live map[string]bool) {
	c.mu.Lock()
	for k := range c.conns {
		if !live[k] {
			delete(c.conns, k)
		}
	}
	c.mu.Unlock()
	c.Rejected.Prune(live)
}

// SharesReads reports whether the connections share reads (SharedFor): observe.Node says so.
func (c *PodConnector) SharesReads() bool { return c.SharedFor > 0 }

// cluster assembles the pod's EMQX cluster from the cache, as the plugin does from its lists
// (cluster.Group). A pod whose workload the matcher does not take still gets a cluster of the
// pods of its instance: the webhook must reach EMQX for any pod it guards.
func (c *PodConnector) cluster(ctx context.Context, pod *corev1.Pod) (*cluster.Cluster, error) {
	var pods corev1.PodList
	if err := c.Reader.List(ctx, &pods, client.InNamespace(pod.Namespace)); err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", ClusterKey(pod), err)
	}
	var sts appsv1.StatefulSetList
	if err := c.Reader.List(ctx, &sts, client.InNamespace(pod.Namespace)); err != nil {
		return nil, fmt.Errorf("list statefulsets of %s: %w", ClusterKey(pod), err)
	}
	var rs appsv1.ReplicaSetList
	if err := c.Reader.List(ctx, &rs, client.InNamespace(pod.Namespace),
		client.MatchingLabels{cluster.LabelOperatorManaged: "emqx-operator"}); err != nil {
		return nil, fmt.Errorf("list replicasets of %s: %w", ClusterKey(pod), err)
	}
	inst := cluster.Instance(pod.Labels)
	for _, cl := range cluster.Group(pod.Namespace, c.Matcher, sts.Items, rs.Items, pods.Items) {
		if cl.Name == inst {
			return cl, nil
		}
	}
	cl := &cluster.Cluster{Name: inst, Namespace: pod.Namespace, Style: cluster.Helm}
	if pod.Labels[cluster.LabelOperatorManaged] != "" {
		cl.Style = cluster.Operator
	}
	for _, p := range pods.Items {
		if c.Matcher.OfInstance(p.Labels, inst) {
			cl.Pods = append(cl.Pods, p)
		}
	}
	return cl, nil
}
