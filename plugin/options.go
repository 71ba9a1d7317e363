package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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
	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
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
	// AllowDefaultCredentials: --emqx-url over plain HTTP to another host may send EMQX's default
	// admin/public.
	AllowDefaultCredentials bool

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
	groupFlags(fs, "kubernetes")
	defer groupFlags(fs, "emqx") // the EMQX flags below, colour apart
	fs.StringVar(
		&g.EMQXURL,
		"emqx-url",
		"",
		"talk to EMQX's API at this URL directly (such as http://127.0.0.1:18083) instead of port-forwarding to a pod",
	)
	fs.StringVar(&g.APIKey, "api-key", "", "EMQX API key (env EMQX_API_KEY)")
	fs.StringVar(&g.APISecret, "api-secret", "", "EMQX API secret (env EMQX_API_SECRET)")
	fs.StringVar(&g.Username, "username", "", "EMQX dashboard username (env EMQX_USERNAME)")
	fs.StringVar(&g.Password, "password", "", "EMQX dashboard password (env EMQX_PASSWORD)")
	fs.StringVar(
		&g.Selector,
		"emqx-selector",
		"",
		"label selector of further EMQX StatefulSets and pods, besides the Helm chart's and emqx-operator's labels "+
			"(as the webhook's --emqx-selector)",
	)
	fs.StringVar(
		&g.Color,
		"color",
		"auto",
		"colour output: auto (only on a terminal, unless NO_COLOR), always or never",
	)
	_ = fs.SetAnnotation("color", flagGroup, []string{"output"})
	fs.BoolVar(
		&g.AllowDefaultCredentials,
		"allow-default-credentials",
		false,
		"with --emqx-url http:// to a host other than this machine and no credentials, "+
			"send EMQX's default admin/public in clear anyway",
	)
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
	for _, f := range []struct{ flag, value, env string }{
		{"--api-secret", g.APISecret, "EMQX_API_SECRET"}, {"--password", g.Password, "EMQX_PASSWORD"},
	} {
		if f.value != "" {
			fmt.Fprintf(
				g.ErrOut,
				"Warning: %s on the command line is visible to other users of this machine (ps) and kept in "+
					"shell history; set %s instead, for example from a file: export %s=\"$(cat secret-file)\"\n",
				f.flag,
				f.env,
				f.env,
			)
		}
	}
	return nil
}

// checkDefaultCredentials refuses to send EMQX's default admin/public in clear to another host
// (--emqx-url http:// that is not loopback, no credentials given) unless asked to.
func (g *GlobalOptions) checkDefaultCredentials(c emqx.Credentials) error {
	if g.EMQXURL == "" || c != (emqx.Credentials{}) || g.AllowDefaultCredentials {
		return nil
	}
	u, err := url.Parse(g.EMQXURL)
	if err != nil {
		return nil // emqx.New says what is wrong with it
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); u.Scheme != "http" || host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--emqx-url %s is plain HTTP to another host and no credentials were given: "+
		"EMQX's default admin/public would cross the network in clear. "+
		"Pass an API key (EMQX_API_KEY, EMQX_API_SECRET), use https://, or --allow-default-credentials", g.EMQXURL)
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

// access is how the verbs reach EMQX: through Kubernetes with the user's credentials, or
// directly with --emqx-url.
func (g *GlobalOptions) access() (ops.Access, error) {
	ns, err := g.Namespace()
	if err != nil {
		return ops.Access{}, err
	}
	if err := g.checkDefaultCredentials(g.credentials()); err != nil {
		return ops.Access{}, err
	}
	a := ops.Access{Namespace: ns, Matcher: g.matcher(),
		EMQX: cluster.Access{
			URL:     g.EMQXURL,
			Creds:   g.credentials(),
			Options: []emqx.Option{emqx.WithClock(g.Clock)},
			Forward: g.Forward,
		}}
	if !g.direct() {
		cfg, cs, err := g.kube()
		if err != nil {
			return ops.Access{}, err
		}
		a.EMQX.Config, a.EMQX.Kube, a.Kube = cfg, cs, cs
	}
	return a, nil
}

// waiting is how a verb waits: on the injected clock.
func (g *GlobalOptions) waiting(interval, timeout time.Duration) ops.Waiting {
	return ops.Waiting{Clock: g.Clock, Interval: interval, Timeout: timeout}
}
