// Package plugin holds the cobra commands of `kubectl emqx`. Each verb has an options struct with
// Complete, Validate and Run; the work itself lives in pkg/.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// GlobalOptions are the flags every command shares: kubectl's own, and how to reach EMQX.
type GlobalOptions struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags

	EMQXURL   string
	Selector  string // --emqx-selector
	APIKey    string
	APISecret string
	Username  string
	Password  string
	Color     string

	Clock clock.WithTicker
	// KubeClient and Forward, when set, replace the client built from the kubeconfig and the
	// port-forward through the API server (tests).
	KubeClient kubernetes.Interface
	Forward    func(ctx context.Context, pod *corev1.Pod, port int) (string, func(), error)
}

// NewGlobalOptions returns options with kubectl's flags.
func NewGlobalOptions(streams genericiooptions.IOStreams) *GlobalOptions {
	return &GlobalOptions{
		IOStreams:   streams,
		ConfigFlags: genericclioptions.NewConfigFlags(true),
		Color:       "auto",
		Clock:       clock.RealClock{},
	}
}

// AddFlags registers the shared flags. Secrets never get a default from the environment here,
// so --help cannot print one: the environment is read when the flags are empty.
func (g *GlobalOptions) AddFlags(fs *pflag.FlagSet) {
	g.ConfigFlags.AddFlags(fs)
	fs.StringVar(&g.EMQXURL, "emqx-url", "", "talk to EMQX's API at this URL directly (such as http://127.0.0.1:18083) instead of port-forwarding to a pod")
	fs.StringVar(&g.APIKey, "api-key", "", "EMQX API key (env EMQX_API_KEY)")
	fs.StringVar(&g.APISecret, "api-secret", "", "EMQX API secret (env EMQX_API_SECRET)")
	fs.StringVar(&g.Username, "username", "", "EMQX dashboard username (env EMQX_USERNAME)")
	fs.StringVar(&g.Password, "password", "", "EMQX dashboard password (env EMQX_PASSWORD)")
	fs.StringVar(&g.Selector, "emqx-selector", "", "label selector of further EMQX StatefulSets and pods, besides the Helm chart's and emqx-operator's labels (as the webhook's --emqx-selector)")
	fs.StringVar(&g.Color, "color", "auto", "colour output: auto (only on a terminal, unless NO_COLOR), always or never")
}

// Validate checks the shared flags.
func (g *GlobalOptions) Validate() error {
	switch g.Color {
	case "auto", "always", "never":
	default:
		return fmt.Errorf("--color must be auto, always or never, not %q", g.Color)
	}
	if _, err := cluster.NewMatcher(g.Selector); err != nil {
		return err
	}
	c := g.credentials()
	if (c.APIKey == "") != (c.APISecret == "") {
		return errors.New("--api-key and --api-secret go together (or EMQX_API_KEY and EMQX_API_SECRET)")
	}
	if c.Username != "" && c.Password == "" {
		return errors.New("--username needs --password (or EMQX_PASSWORD)")
	}
	return nil
}

// matcher is --emqx-selector's Matcher; Validate has refused a selector that does not parse.
func (g *GlobalOptions) matcher() cluster.Matcher {
	m, _ := cluster.NewMatcher(g.Selector)
	return m
}

func (g *GlobalOptions) credentials() emqx.Credentials {
	pick := func(flag, env string) string {
		if flag != "" {
			return flag
		}
		return os.Getenv(env)
	}
	return emqx.Credentials{
		APIKey: pick(g.APIKey, "EMQX_API_KEY"), APISecret: pick(g.APISecret, "EMQX_API_SECRET"),
		Username: pick(g.Username, "EMQX_USERNAME"), Password: pick(g.Password, "EMQX_PASSWORD"),
	}
}

func (g *GlobalOptions) direct() bool { return g.EMQXURL != "" }

// Namespace is -n, else the kubeconfig's namespace, else "default".
func (g *GlobalOptions) Namespace() (string, error) {
	ns, _, err := g.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("read the namespace from the kubeconfig: %w", err)
	}
	return ns, nil
}

func (g *GlobalOptions) kube() (*rest.Config, kubernetes.Interface, error) {
	if g.KubeClient != nil {
		return &rest.Config{}, g.KubeClient, nil
	}
	cfg, err := g.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("load the kubeconfig: %w (or use --emqx-url to talk to EMQX directly)", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cfg, cs, nil
}

// target is an EMQX cluster to work on and a connection to its API.
type target struct {
	ns      string
	matcher cluster.Matcher  // which pods and StatefulSets are EMQX (--emqx-selector)
	cl      *cluster.Cluster // nil in direct mode
	kube    kubernetes.Interface
	conn    *cluster.Conn
}

func (t *target) Close() {
	if t.conn != nil {
		t.conn.Close()
	}
}

// resolve finds the cluster (by name, or the only one) and connects to its API, avoiding the
// pods named in avoid when it can.
func (g *GlobalOptions) resolve(ctx context.Context, name string, avoid ...string) (*target, error) {
	return g.connect(ctx, func(ctx context.Context, cs kubernetes.Interface, ns string) (*cluster.Cluster, error) {
		clusters, err := cluster.Discover(ctx, cs, ns, g.matcher())
		if err != nil {
			return nil, err
		}
		return cluster.Select(clusters, name, ns)
	}, avoid...)
}

// connect finds the cluster with find (not in direct mode) and connects to its API.
func (g *GlobalOptions) connect(ctx context.Context, find func(context.Context, kubernetes.Interface, string) (*cluster.Cluster, error), avoid ...string) (*target, error) {
	ns, err := g.Namespace()
	if err != nil {
		return nil, err
	}
	t := &target{ns: ns, matcher: g.matcher()}
	access := cluster.Access{URL: g.EMQXURL, Creds: g.credentials(), Options: []emqx.Option{emqx.WithClock(g.Clock)}, Forward: g.Forward}
	if !g.direct() {
		cfg, cs, err := g.kube()
		if err != nil {
			return nil, err
		}
		access.Config, access.Kube, t.kube = cfg, cs, cs
		if t.cl, err = find(ctx, cs, ns); err != nil {
			return nil, err
		}
	}
	if t.conn, err = cluster.Connect(ctx, access, t.cl, avoid...); err != nil {
		return nil, err
	}
	return t, nil
}

// resolvePod finds the cluster of an EMQX pod (or, in direct mode, a node by pod or node name)
// and the pod's node.
func (g *GlobalOptions) resolvePod(ctx context.Context, pod string) (*target, emqx.Node, error) {
	t, err := g.connect(ctx, func(ctx context.Context, cs kubernetes.Interface, ns string) (*cluster.Cluster, error) {
		cl, _, err := cluster.ForPod(ctx, cs, ns, pod, g.matcher())
		return cl, err
	}, pod)
	if err != nil {
		return nil, emqx.Node{}, err
	}
	node, err := t.nodeOf(ctx, pod)
	if err != nil {
		t.Close()
		return nil, emqx.Node{}, err
	}
	return t, node, nil
}

// nodeOf maps a pod (or, in direct mode, a pod or node name) to its running EMQX node.
func (t *target) nodeOf(ctx context.Context, pod string) (emqx.Node, error) {
	nodes, err := t.conn.Nodes(ctx)
	if err != nil {
		return emqx.Node{}, err
	}
	if t.cl == nil {
		if n, ok := cluster.NodeByName(nodes, pod); ok && n.Running() {
			return n, nil
		}
		return emqx.Node{}, fmt.Errorf("no running EMQX node %q at %s; list nodes with: kubectl emqx status --emqx-url %s", pod, t.conn.Via, t.conn.Via)
	}
	p, ok := t.cl.Pod(pod)
	if !ok {
		return emqx.Node{}, fmt.Errorf("pod %q is not part of EMQX cluster %q; list its pods with: kubectl emqx status -n %s", pod, t.cl.Name, t.ns)
	}
	n, ok := t.nodeOfPod(ctx, nodes, p)
	if !ok || !n.Running() {
		return emqx.Node{}, fmt.Errorf("pod %q has no running EMQX node (not started, or not part of the cluster yet); check: kubectl emqx status -n %s", pod, t.ns)
	}
	return n, nil
}

// nodeOfPod finds the pod's node among nodes, recognising it also by the name its environment gives.
func (t *target) nodeOfPod(ctx context.Context, nodes []emqx.Node, p *corev1.Pod) (emqx.Node, bool) {
	n, _, ok := cluster.FindNode(ctx, t.kube, nodes, p)
	return n, ok
}

// podLabel names a node by its pod where known.
func (t *target) podLabel(node string) string {
	if t.cl != nil {
		if p, ok := cluster.PodOfNode(t.cl.Pods, node); ok {
			return p.Name
		}
	}
	return node
}

// nsFlag is " -n NS" for commands printed as advice, or "" in direct mode.
func (t *target) nsFlag() string {
	if t.cl == nil {
		return ""
	}
	return " -n " + t.ns
}

// poll calls fn every interval until it returns done, an error, or ctx ends; past deadline (on the
// injected clock; zero: none) it returns context.DeadlineExceeded.
func poll(ctx context.Context, clk clock.WithTicker, interval time.Duration, deadline time.Time, fn func() (bool, error)) error {
	tick := clk.NewTicker(interval)
	defer tick.Stop()
	for {
		done, err := fn()
		if err != nil || done {
			return err
		}
		if !deadline.IsZero() && !clk.Now().Before(deadline) {
			return context.DeadlineExceeded
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C():
		}
	}
}

// refreshPods re-reads the cluster's workloads and pods.
func (t *target) refreshPods(ctx context.Context) error {
	clusters, err := cluster.Discover(ctx, t.kube, t.ns, t.matcher)
	if err != nil {
		return err
	}
	c, err := cluster.Select(clusters, t.cl.Name, t.ns)
	if err != nil {
		return err
	}
	t.cl = c
	return nil
}
