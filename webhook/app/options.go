package app

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/certs"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/controller"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/custommetrics"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

// Options are emqx-webhook's flags and what Complete derives from them.
type Options struct {
	Kubeconfig string
	Namespace  string // the webhook's own: its certificate Secret and lease

	Host, CertDir      string
	Port               int
	TLSMode, TLSSecret string
	DNSNames, IPs      []string
	ClientCA           string
	ClientNames        []string
	WebhookConfig      string
	MutatingConfig     string
	APIService         string
	WatchNamespaces    []string
	Selector           string
	RoutingGate        bool
	AutoRebalance      bool
	Cooldown           time.Duration
	AccessInterval     time.Duration
	MetricsSecure      bool
	MetricsAddr        string
	CheckMetrics       string // --check-metrics: check the metrics at this URL and exit (helm test)
	CustomMetricsAddr  string
	HealthAddr         string
	LeaderElect        bool
	EMQXTimeout        time.Duration
	EMQXSharedFor      time.Duration // --emqx-shared-reads
	ControllerPoll     time.Duration
	WaitHealthCheck    string
	WaitTakeover       string
	Decisions          decide.Config
	Log                zap.Options
	clientAuth         *certs.ClientAuth // Complete: nil answers any caller of the admission port
	matcher            cluster.Matcher
}

// NewOptions are the defaults.
func NewOptions() *Options {
	return &Options{
		Namespace:         os.Getenv("POD_NAMESPACE"),
		Port:              9443,
		CertDir:           "/tmp/k8s-webhook-server/serving-certs",
		TLSMode:           "self-signed",
		TLSSecret:         "emqx-webhook-tls",
		WebhookConfig:     "emqx-webhook",
		MutatingConfig:    "emqx-webhook",
		APIService:        "v1beta2.custom.metrics.k8s.io",
		AccessInterval:    10 * time.Minute,
		Cooldown:          time.Minute,
		MetricsSecure:     true,
		CustomMetricsAddr: "0",
		HealthAddr:        ":8081",
		LeaderElect:       true,
		EMQXTimeout:       3 * time.Second,
		EMQXSharedFor:     time.Second,
		ControllerPoll:    2 * time.Second,
		Decisions:         decide.DefaultConfig(),
	}
}

// AddFlags registers the flags on fs, with controller-runtime's zap flags (--zap-log-level …).
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	c := &o.Decisions
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig (default: in-cluster, or KUBECONFIG)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "the webhook's own namespace (env POD_NAMESPACE)")
	fs.StringVar(&o.Host, "host", o.Host, "address the webhook server binds (default all)")
	fs.IntVar(&o.Port, "port", o.Port, "webhook server port")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "directory of tls.crt and tls.key")
	fs.StringVar(&o.TLSMode, "tls", o.TLSMode, "self-signed: the built-in rotator issues the certificate and "+
		"injects the CA; files: cert-dir is provided (cert-manager)")
	fs.StringVar(
		&o.TLSSecret,
		"tls-secret",
		o.TLSSecret,
		"Secret holding the self-signed CA and certificate, shared by the replicas",
	)
	fs.StringArrayVar(&o.DNSNames, "tls-dns-name", o.DNSNames, "DNS name of the serving certificate "+
		"(repeatable; default emqx-webhook.<namespace>.svc)")
	fs.StringArrayVar(&o.IPs, "tls-ip", o.IPs, "IP address of the serving certificate (repeatable)")
	fs.StringVar(&o.ClientCA, "client-ca-file", o.ClientCA, "require every caller of the admission port to present a "+
		"client certificate signed by this CA (PEM; re-read when it changes): the API server's, from its "+
		"AdmissionConfiguration's kubeConfigFile "+
		"(manifests/helm/emqx-webhook/README.md, \"Who can reach the webhook\")")
	fs.StringArrayVar(&o.ClientNames, "client-cert-name", o.ClientNames, "with --client-ca-file, accept only client "+
		"certificates with this common name or DNS name (repeatable; default: any the CA signed)")
	fs.StringVar(&o.WebhookConfig, "webhook-config", o.WebhookConfig, "ValidatingWebhookConfiguration whose caBundle "+
		"the self-signed rotator keeps current")
	fs.StringVar(&o.MutatingConfig, "mutating-webhook-config", o.MutatingConfig, "MutatingWebhookConfiguration "+
		"(the routing gate) whose caBundle the self-signed rotator keeps current")
	fs.BoolVar(
		&o.RoutingGate,
		"routing-gate",
		o.RoutingGate,
		"add the readiness gate "+string(decide.ConditionServing)+
			" to every EMQX pod, not only to those of StatefulSets annotated "+
			decide.AnnRouting+"="+decide.RoutingReadinessGate,
	)
	fs.DurationVar(
		&o.AccessInterval,
		"access-check-interval",
		o.AccessInterval,
		"how often the webhook checks that it "+
			"can authenticate to each EMQX cluster (new clusters within a minute)",
	)
	fs.BoolVar(&o.AutoRebalance, "auto-rebalance", o.AutoRebalance, "rebalance every EMQX cluster automatically after "+
		"its membership changes, not only StatefulSets annotated "+controller.AnnRebalance+"=auto")
	fs.DurationVar(&o.Cooldown, "rebalance-cooldown", o.Cooldown, "how long a cluster's membership must be stable "+
		"before an automatic rebalance starts; at most one per cool-down")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Prometheus metrics address "+
		"(0 disables; default :8443, or 127.0.0.1:8080 with --metrics-secure=false)")
	fs.StringVar(&o.CheckMetrics, "check-metrics", o.CheckMetrics, "check the webhook's metrics at this URL "+
		"(one GET with this pod's ServiceAccount token, as Prometheus scrapes) and exit: the chart's helm test")
	fs.StringVar(&o.CustomMetricsAddr, "custom-metrics-bind-address", o.CustomMetricsAddr, "serve EMQX's connections "+
		"per pod through the custom metrics API (custom.metrics.k8s.io) at this address, e.g. :6443, for "+
		"HorizontalPodAutoscalers (0 disables; needs the APIService and RBAC of manifests/components/custom-metrics)")
	fs.StringVar(&o.APIService, "custom-metrics-apiservice", o.APIService, "APIService whose caBundle the "+
		"self-signed rotator keeps current when the custom metrics API is served")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", o.MetricsSecure, "serve metrics over HTTPS to authenticated, "+
		"authorized clients only (TokenReview and SubjectAccessReview of get on /metrics); false serves plain HTTP, "+
		"on loopback unless --metrics-bind-address says otherwise")
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", o.HealthAddr, "health and readiness probe address")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "elect a leader for the controller "+
		"(every replica answers admission)")
	fs.DurationVar(&o.EMQXTimeout, "emqx-timeout", o.EMQXTimeout, "timeout of each EMQX API request")
	fs.DurationVar(&o.EMQXSharedFor, "emqx-shared-reads", o.EMQXSharedFor, "decisions about one EMQX cluster "+
		"within this of each other share EMQX's answers (never across a start or stop; at most 5s; 0: each "+
		"asks), so a mass drain's retries ask EMQX per cluster, not per pod; a removal is allowed only on "+
		"a fresh answer (EMQX is asked again before any allow)")
	fs.DurationVar(&c.DecisionTimeout, "decision-timeout", c.DecisionTimeout, "bound of one admission decision, "+
		"EMQX calls included; at most 7s, under the webhook's timeoutSeconds (10)")
	fs.StringArrayVar(
		&o.WatchNamespaces,
		"watch-namespace",
		o.WatchNamespaces,
		"read and guard only this namespace's EMQX pods "+
			"(repeatable; default all): the namespaced install, whose RBAC grants Roles in these namespaces only "+
			"(Helm value watchNamespaces)",
	)
	fs.StringVar(&o.Selector, "emqx-selector", o.Selector, "label selector of further EMQX pods and StatefulSets, "+
		"besides the Helm chart's and emqx-operator's labels (widen the webhook configuration's "+
		"matchConditions to match)")
	fs.DurationVar(&o.ControllerPoll, "controller-poll", o.ControllerPoll, "how often the controller checks an "+
		"evacuation in progress")
	fs.Int64Var(&c.ConnEvictRate, "conn-evict-rate", c.ConnEvictRate, "connections evicted per second "+
		"(default: EMQX's, 500); StatefulSet annotation "+decide.AnnConnRate)
	fs.Int64Var(&c.SessEvictRate, "sess-evict-rate", c.SessEvictRate, "sessions migrated per second "+
		"(default: EMQX's, 500); annotation "+decide.AnnSessRate)
	fs.StringVar(&o.WaitHealthCheck, "wait-health-check", o.WaitHealthCheck, "evacuation wait_health_check "+
		"(default: EMQX's, 60s); annotation "+decide.AnnWaitHealthCheck)
	fs.StringVar(&o.WaitTakeover, "wait-takeover", o.WaitTakeover, "evacuation wait_takeover (default: EMQX's, 60s); "+
		"annotation "+decide.AnnWaitTakeover)
	fs.DurationVar(&c.EvacuationTimeout, "evacuation-timeout", c.EvacuationTimeout, "allow a removal whose "+
		"evacuation ran this long; annotation "+decide.AnnTimeout)
	fs.DurationVar(&c.AbandonAfter, "abandon-after", c.AbandonAfter, "stop an evacuation the webhook started when "+
		"nobody asked to remove its pod for this long after its node became empty; annotation "+decide.AnnAbandonAfter)
	fs.DurationVar(&c.UnreachableGrace, "api-unreachable-grace", c.UnreachableGrace, "allow a removal once EMQX's "+
		"API has not answered this long (0: at once)")
	fs.IntVar(&c.MaxConcurrent, "max-concurrent-evacuations", c.MaxConcurrent, "evacuations at once per EMQX cluster; "+
		"other removals wait")
	fs.BoolVar(&c.Audit, "audit", c.Audit, "observe only: allow every removal and report what would have been held "+
		"(Warning Event "+decide.ReasonWouldHold+"); StatefulSet annotation "+decide.AnnMode+"=audit|enforce")
	fs.DurationVar(&c.StallAfter, "stall-after", c.StallAfter, "report an evacuation whose session count has not "+
		"moved this long (Event SessionEvictionStalled; EMQX before 5.8.4 can loop on a lost session); 0 disables")
	zfs := flag.NewFlagSet("zap", flag.ContinueOnError)
	o.Log.BindFlags(zfs)
	fs.AddGoFlagSet(zfs)
}

// Complete fills in what depends on other flags and reads what must exist at start (the client CA).
func (o *Options) Complete() error {
	for name, s := range map[string]string{"wait-health-check": o.WaitHealthCheck, "wait-takeover": o.WaitTakeover} {
		if s == "" {
			continue
		}
		d, err := evacuation.ParseWait(s)
		if err != nil {
			return fmt.Errorf("--%s %w", name, err)
		}
		if name == "wait-health-check" {
			o.Decisions.WaitHealthCheck = &d
		} else {
			o.Decisions.WaitTakeover = &d
		}
	}
	if o.MetricsAddr == "" {
		o.MetricsAddr = ":8443"
		if !o.MetricsSecure {
			o.MetricsAddr = "127.0.0.1:8080"
		}
	}
	if len(o.DNSNames) == 0 {
		o.DNSNames = []string{
			"emqx-webhook." + o.Namespace + ".svc",
			"emqx-webhook." + o.Namespace + ".svc.cluster.local",
		}
	}
	m, err := cluster.NewMatcher(o.Selector)
	if err != nil {
		return err
	}
	o.matcher = m
	if o.ClientCA != "" {
		auth, err := certs.NewClientAuth(o.ClientCA, o.ClientNames)
		if err != nil {
			return fmt.Errorf("--client-ca-file: %w", err)
		}
		o.clientAuth = auth
	}
	return nil
}

// Validate refuses flags that cannot work, naming them.
func (o *Options) Validate() error {
	c := o.Decisions
	switch {
	case o.Namespace == "":
		return errors.New(
			"--namespace (or POD_NAMESPACE) is required: the webhook keeps its certificate and lease there",
		)
	case o.TLSMode != "self-signed" && o.TLSMode != "files":
		return fmt.Errorf("--tls must be self-signed or files, not %q", o.TLSMode)
	case slices.ContainsFunc(o.WatchNamespaces, func(ns string) bool { return len(validation.IsDNS1123Label(ns)) > 0 }):
		return fmt.Errorf("--watch-namespace takes namespace names, not %q", strings.Join(o.WatchNamespaces, ","))
	case o.ClientCA == "" && len(o.ClientNames) > 0:
		return errors.New(
			"--client-cert-name needs --client-ca-file: the names are checked on certificates that CA signed",
		)
	case o.Cooldown < time.Second:
		return errors.New("--rebalance-cooldown must be at least 1s")
	case o.AccessInterval < time.Minute:
		return errors.New("--access-check-interval must be at least 1m")
	case c.MaxConcurrent < 1:
		return errors.New("--max-concurrent-evacuations must be at least 1")
	case c.EvacuationTimeout <= 0 || c.AbandonAfter <= 0 || c.UnreachableGrace < 0 || o.EMQXTimeout <= 0:
		return errors.New("--evacuation-timeout, --abandon-after and --emqx-timeout must be positive; " +
			"--api-unreachable-grace cannot be negative")
	case o.EMQXSharedFor < 0 || o.EMQXSharedFor > 5*time.Second:
		return fmt.Errorf("--emqx-shared-reads must be between 0 and 5s, got %v: older answers would hide "+
			"an evacuation's progress", o.EMQXSharedFor)
	case c.DecisionTimeout <= 0 || c.DecisionTimeout > 7*time.Second:
		return errors.New("--decision-timeout must be positive and at most 7s: with the 2s annotation writes it " +
			"must end before the webhook's timeoutSeconds (10)")
	case c.ConnEvictRate < 0 || c.SessEvictRate < 0:
		return errors.New("eviction rates cannot be negative")
	}
	for _, s := range o.IPs {
		if net.ParseIP(s) == nil {
			return fmt.Errorf("--tls-ip %q is not an IP address", s)
		}
	}
	if o.CustomMetricsAddr != "0" {
		if _, _, err := custommetrics.ParseAddress(o.CustomMetricsAddr); err != nil {
			return fmt.Errorf("--custom-metrics-bind-address: %w", err)
		}
	}
	return nil
}

// tlsDefaults: TLS 1.2 at least (1.3 negotiated where the client offers it), and HTTP/2 off: it
// exposes the server to stream-reset floods (CVE-2023-44487).
func tlsDefaults(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.NextProtos = []string{"http/1.1"}
}

// metricsOptions: HTTPS with authentication and authorization by default.
func (o *Options) metricsOptions() metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.MetricsAddr}
	if o.MetricsSecure {
		m.SecureServing = true
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
		m.TLSOpts = []func(*tls.Config){tlsDefaults}
	}
	return m
}

// cacheOptions: managed fields stripped (emqxcache.New keeps EMQX's pods and ReplicaSets only);
// with --watch-namespace, namespaced objects (pods, workloads, budgets) are read from those
// namespaces only, so Roles there are all the RBAC needed.
func (o *Options) cacheOptions() cache.Options {
	c := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if len(o.WatchNamespaces) > 0 {
		c.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.WatchNamespaces {
			c.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return c
}
