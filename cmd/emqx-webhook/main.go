// Command emqx-webhook is the admission webhook that holds evictions, deletions and StatefulSet
// scale-downs of EMQX pods until their node is evacuated, and the controller beside it.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/certs"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/version"
	"github.com/kubectl-emqx/kubectl-emqx/webhook"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/custommetrics"
)

type options struct {
	kubeconfig      string
	namespace       string
	host            string
	port            int
	certDir         string
	tlsMode         string
	tlsSecret       string
	dnsNames        list
	ips             list
	clientCA        string
	clientNames     list
	clientAuth      *certs.ClientAuth // nil: any caller that reaches the admission port is answered
	watch           list              // namespaces the webhook reads and guards; empty: all
	webhookConfig   string
	mutatingConfig  string
	routingGate     bool
	autoRebalance   bool
	cooldown        time.Duration
	metricsSecure   bool
	accessInterval  time.Duration
	metricsAddr     string
	customMetrics   string
	apiService      string
	healthAddr      string
	leaderElect     bool
	emqxTimeout     time.Duration
	controllerPoll  time.Duration
	waitHealthCheck string
	waitTakeover    string
	selector        string
	matcher         webhook.Matcher
	cfg             webhook.Config
}

// leaderElectionID names the controller's lease; the routing gate reads it to know a controller runs.
const leaderElectionID = "emqx-webhook-controller"

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "emqx-webhook:", err)
		os.Exit(1)
	}
}

func parse(args []string) (*options, error) {
	o := &options{cfg: webhook.DefaultConfig()}
	fs := flag.NewFlagSet("emqx-webhook", flag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig (default: in-cluster, or KUBECONFIG)")
	fs.StringVar(&o.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the webhook's own namespace (env POD_NAMESPACE)")
	fs.StringVar(&o.host, "host", "", "address the webhook server binds (default all)")
	fs.IntVar(&o.port, "port", 9443, "webhook server port")
	fs.StringVar(&o.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory of tls.crt and tls.key")
	fs.StringVar(&o.tlsMode, "tls", "self-signed", "self-signed: the built-in rotator issues the certificate and injects the CA; files: cert-dir is provided (cert-manager)")
	fs.StringVar(&o.tlsSecret, "tls-secret", "emqx-webhook-tls", "Secret holding the self-signed CA and certificate, shared by the replicas")
	fs.Var(&o.dnsNames, "tls-dns-name", "DNS name of the serving certificate (repeatable; default emqx-webhook.<namespace>.svc)")
	fs.Var(&o.ips, "tls-ip", "IP address of the serving certificate (repeatable)")
	fs.StringVar(&o.clientCA, "client-ca-file", "", "require every caller of the admission port to present a client certificate signed by this CA (PEM; re-read when it changes): the API server's, from its AdmissionConfiguration's kubeConfigFile (README \"Who can reach the webhook\")")
	fs.Var(&o.clientNames, "client-cert-name", "with --client-ca-file, accept only client certificates with this common name or DNS name (repeatable; default: any the CA signed)")
	fs.StringVar(&o.webhookConfig, "webhook-config", "emqx-webhook", "ValidatingWebhookConfiguration whose caBundle the self-signed rotator keeps current")
	fs.StringVar(&o.mutatingConfig, "mutating-webhook-config", "emqx-webhook", "MutatingWebhookConfiguration (the routing gate) whose caBundle the self-signed rotator keeps current")
	fs.BoolVar(&o.routingGate, "routing-gate", false, "add the readiness gate "+string(webhook.ConditionServing)+" to every EMQX pod, not only to those of StatefulSets annotated "+webhook.AnnRouting+"="+webhook.RoutingReadinessGate)
	fs.DurationVar(&o.accessInterval, "access-check-interval", 10*time.Minute, "how often the webhook checks that it can authenticate to each EMQX cluster (new clusters within a minute)")
	fs.BoolVar(&o.autoRebalance, "auto-rebalance", false, "rebalance every EMQX cluster automatically after its membership changes, not only StatefulSets annotated "+webhook.AnnRebalance+"=auto")
	fs.DurationVar(&o.cooldown, "rebalance-cooldown", time.Minute, "how long a cluster's membership must be stable before an automatic rebalance starts; at most one per cool-down")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", "", "Prometheus metrics address (0 disables; default :8443, or 127.0.0.1:8080 with --metrics-secure=false)")
	fs.StringVar(&o.customMetrics, "custom-metrics-bind-address", "0", "serve EMQX's connections per pod through the custom metrics API (custom.metrics.k8s.io) at this address, e.g. :6443, for HorizontalPodAutoscalers (0 disables; needs the APIService and RBAC of manifests/components/custom-metrics)")
	fs.StringVar(&o.apiService, "custom-metrics-apiservice", "v1beta2.custom.metrics.k8s.io", "APIService whose caBundle the self-signed rotator keeps current when the custom metrics API is served")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "serve metrics over HTTPS to authenticated, authorized clients only (TokenReview and SubjectAccessReview of get on /metrics); false serves plain HTTP, on loopback unless --metrics-bind-address says otherwise")
	fs.StringVar(&o.healthAddr, "health-probe-bind-address", ":8081", "health and readiness probe address")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader for the controller (every replica answers admission)")
	fs.DurationVar(&o.emqxTimeout, "emqx-timeout", 3*time.Second, "timeout of each EMQX API request")
	fs.DurationVar(&o.cfg.DecisionTimeout, "decision-timeout", o.cfg.DecisionTimeout, "bound of one admission decision, EMQX calls included; at most 7s, under the webhook's timeoutSeconds (10)")
	fs.Var(&o.watch, "watch-namespace", "read and guard only this namespace's EMQX pods (repeatable; default all): the namespaced install, whose RBAC grants Roles in these namespaces only (Helm value watchNamespaces)")
	fs.StringVar(&o.selector, "emqx-selector", "", "label selector of further EMQX pods and StatefulSets, besides the Helm chart's and emqx-operator's labels (widen the webhook configuration's matchConditions to match)")
	fs.DurationVar(&o.controllerPoll, "controller-poll", 2*time.Second, "how often the controller checks an evacuation in progress")
	fs.Int64Var(&o.cfg.ConnEvictRate, "conn-evict-rate", 0, "connections evicted per second (default: EMQX's, 500); StatefulSet annotation "+webhook.AnnConnRate)
	fs.Int64Var(&o.cfg.SessEvictRate, "sess-evict-rate", 0, "sessions migrated per second (default: EMQX's, 500); annotation "+webhook.AnnSessRate)
	fs.StringVar(&o.waitHealthCheck, "wait-health-check", "", "evacuation wait_health_check (default: EMQX's, 60s); annotation "+webhook.AnnWaitHealthCheck)
	fs.StringVar(&o.waitTakeover, "wait-takeover", "", "evacuation wait_takeover (default: EMQX's, 60s); annotation "+webhook.AnnWaitTakeover)
	fs.DurationVar(&o.cfg.EvacuationTimeout, "evacuation-timeout", o.cfg.EvacuationTimeout, "allow a removal whose evacuation ran this long; annotation "+webhook.AnnTimeout)
	fs.DurationVar(&o.cfg.AbandonAfter, "abandon-after", o.cfg.AbandonAfter, "stop an evacuation the webhook started when nobody asked to remove its pod for this long after its node became empty; annotation "+webhook.AnnAbandonAfter)
	fs.DurationVar(&o.cfg.UnreachableGrace, "api-unreachable-grace", o.cfg.UnreachableGrace, "allow a removal once EMQX's API has not answered this long (0: at once)")
	fs.IntVar(&o.cfg.MaxConcurrent, "max-concurrent-evacuations", o.cfg.MaxConcurrent, "evacuations at once per EMQX cluster; other removals wait")
	fs.DurationVar(&o.cfg.StallAfter, "stall-after", o.cfg.StallAfter, "report an evacuation whose session count has not moved this long (Event SessionEvictionStalled; EMQX before 5.8.4 can loop on a lost session); 0 disables")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for name, s := range map[string]string{"wait-health-check": o.waitHealthCheck, "wait-takeover": o.waitTakeover} {
		if s == "" {
			continue
		}
		d, err := evacuation.ParseWait(s)
		if err != nil {
			return nil, fmt.Errorf("--%s %w", name, err)
		}
		if name == "wait-health-check" {
			o.cfg.WaitHealthCheck = &d
		} else {
			o.cfg.WaitTakeover = &d
		}
	}
	switch {
	case o.namespace == "":
		return nil, errors.New("--namespace (or POD_NAMESPACE) is required: the webhook keeps its certificate and lease there")
	case o.tlsMode != "self-signed" && o.tlsMode != "files":
		return nil, fmt.Errorf("--tls must be self-signed or files, not %q", o.tlsMode)
	case slices.ContainsFunc(o.watch, func(ns string) bool { return len(validation.IsDNS1123Label(ns)) > 0 }):
		return nil, fmt.Errorf("--watch-namespace takes namespace names, not %q", strings.Join(o.watch, ","))
	case o.clientCA == "" && len(o.clientNames) > 0:
		return nil, errors.New("--client-cert-name needs --client-ca-file: the names are checked on certificates that CA signed")
	case o.cooldown < time.Second:
		return nil, errors.New("--rebalance-cooldown must be at least 1s")
	case o.accessInterval < time.Minute:
		return nil, errors.New("--access-check-interval must be at least 1m")
	case o.cfg.MaxConcurrent < 1:
		return nil, errors.New("--max-concurrent-evacuations must be at least 1")
	case o.cfg.EvacuationTimeout <= 0 || o.cfg.AbandonAfter <= 0 || o.cfg.UnreachableGrace < 0 || o.emqxTimeout <= 0:
		return nil, errors.New("--evacuation-timeout, --abandon-after and --emqx-timeout must be positive; --api-unreachable-grace cannot be negative")
	case o.cfg.DecisionTimeout <= 0 || o.cfg.DecisionTimeout > 7*time.Second:
		return nil, errors.New("--decision-timeout must be positive and at most 7s: with the 2s annotation writes it must end before the webhook's timeoutSeconds (10)")
	case o.cfg.ConnEvictRate < 0 || o.cfg.SessEvictRate < 0:
		return nil, errors.New("eviction rates cannot be negative")
	}
	if o.customMetrics != "0" {
		if _, _, err := custommetrics.ParseAddress(o.customMetrics); err != nil {
			return nil, fmt.Errorf("--custom-metrics-bind-address: %w", err)
		}
	}
	if o.clientCA != "" {
		auth, err := certs.NewClientAuth(o.clientCA, o.clientNames)
		if err != nil {
			return nil, fmt.Errorf("--client-ca-file: %w", err)
		}
		o.clientAuth = auth
	}
	m, err := cluster.NewMatcher(o.selector)
	if err != nil {
		return nil, err
	}
	o.matcher = m
	if o.metricsAddr == "" {
		o.metricsAddr = ":8443"
		if !o.metricsSecure {
			o.metricsAddr = "127.0.0.1:8080"
		}
	}
	if len(o.dnsNames) == 0 {
		o.dnsNames = list{"emqx-webhook." + o.namespace + ".svc", "emqx-webhook." + o.namespace + ".svc.cluster.local"}
	}
	return o, nil
}

// tlsDefaults: TLS 1.2 at least (1.3 negotiated where the client offers it), and HTTP/2 off: it
// exposes the server to stream-reset floods (CVE-2023-44487).
func tlsDefaults(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.NextProtos = []string{"http/1.1"}
}

// metricsOptions: HTTPS with authentication and authorization by default.
func metricsOptions(o *options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.metricsAddr}
	if o.metricsSecure {
		m.SecureServing = true
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
		m.TLSOpts = []func(*tls.Config){tlsDefaults}
	}
	return m
}

// cacheOptions: managed fields stripped; with --watch-namespace, namespaced objects (pods,
// workloads, budgets) are read from those namespaces only, so Roles there are all the RBAC needed.
func cacheOptions(o *options) cache.Options {
	c := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if len(o.watch) > 0 {
		c.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.watch {
			c.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return c
}

func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		return ctrl.GetConfig()
	}
	return clientcmd.BuildConfigFromFlags("", path)
}

func run(ctx context.Context, args []string) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(false)))
	log := ctrl.Log.WithName("emqx-webhook")
	log.Info("starting", "version", version.Version, "namespace", o.namespace, "tls", o.tlsMode)
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	var apiServices []string
	if o.customMetrics != "0" {
		apiServices = []string{o.apiService}
	}
	var rot *certs.Rotator
	if o.tlsMode == "self-signed" {
		var ips []net.IP
		for _, s := range o.ips {
			ip := net.ParseIP(s)
			if ip == nil {
				return fmt.Errorf("--tls-ip %q is not an IP address", s)
			}
			ips = append(ips, ip)
		}
		rot = &certs.Rotator{Kube: kube, Dynamic: dyn, APIServices: apiServices, Namespace: o.namespace, SecretName: o.tlsSecret, DNSNames: o.dnsNames, IPs: ips,
			CertDir: o.certDir, ValidatingWebhooks: []string{o.webhookConfig}, MutatingWebhooks: []string{o.mutatingConfig}, Validity: 365 * 24 * time.Hour,
			RenewBefore: 30 * 24 * time.Hour, Clock: clock.RealClock{}, Log: log.WithName("certs")}
		// The certificate must exist before the webhook server starts.
		if err := rot.Ensure(ctx); err != nil {
			return err
		}
	}
	serverTLS := []func(*tls.Config){tlsDefaults}
	if o.clientAuth != nil {
		serverTLS = append(serverTLS, o.clientAuth.Apply)
		log.Info("admission callers must present a client certificate", "ca", o.clientCA, "names", o.clientNames)
	} else {
		log.Info("WARNING: the admission port takes reviews from any caller that reaches it; a forged eviction can start an "+
			"evacuation. Require the API server's client certificate (--client-ca-file), or admit only the API server's "+
			"addresses to port 9443 (NetworkPolicy)", "metric", "emqx_webhook_client_auth_required 0")
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 clientgoscheme.Scheme,
		Metrics:                metricsOptions(o),
		HealthProbeBindAddress: o.healthAddr,
		LeaderElection:         o.leaderElect,
		LeaderElectionID:       leaderElectionID,
		// A replica that stops hands the lease over at once instead of after its expiry.
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionNamespace:       o.namespace,
		Cache:                         cacheOptions(o),
		// HTTP/2 off (tlsDefaults), and the API server's client certificate required when configured.
		WebhookServer: crwebhook.NewServer(crwebhook.Options{Host: o.host, Port: o.port, CertDir: o.certDir, TLSOpts: serverTLS}),
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	gate := &webhook.Gate{
		Matcher: o.matcher,
		Client:  mgr.GetClient(),
		Kube:    kube,
		EMQX: &webhook.PodConnector{Matcher: o.matcher, Reader: mgr.GetClient(), Secrets: kube, Timeout: o.emqxTimeout,
			Rejected: cluster.Rejected{Clock: clock.RealClock{}}},
		Recorder: mgr.GetEventRecorderFor("emqx-webhook"),
		Clock:    clock.RealClock{},
		Config:   o.cfg,
		Log:      log.WithName("gate"),
		Metrics:  webhook.NewMetrics(crmetrics.Registry),
	}
	gate.Metrics.ClientAuth(o.clientAuth != nil)
	decoder := admission.NewDecoder(mgr.GetScheme())
	srv := mgr.GetWebhookServer()
	srv.Register(webhook.PathEviction, webhook.Bounded(&crwebhook.Admission{Handler: &webhook.EvictionHandler{Gate: gate, Reader: mgr.GetClient()}}))
	srv.Register(webhook.PathPodDelete, webhook.Bounded(&crwebhook.Admission{Handler: &webhook.PodDeleteHandler{Gate: gate, Decoder: decoder, Reader: mgr.GetClient()}}))
	srv.Register(webhook.PathScale, webhook.Bounded(&crwebhook.Admission{Handler: &webhook.ScaleHandler{Gate: gate, Reader: mgr.GetClient(), Decoder: decoder}}))
	routing := &webhook.PodCreateHandler{Matcher: o.matcher, Reader: mgr.GetClient(), All: o.routingGate}
	if o.leaderElect {
		routing.Alive = webhook.LeaseAlive(kube, o.namespace, leaderElectionID, clock.RealClock{})
	}
	srv.Register(webhook.PathPodCreate, webhook.Bounded(&crwebhook.Admission{Handler: routing}))
	if o.customMetrics != "0" {
		// After the certificate exists: the server loads it (and reloads it when it changes).
		p := &custommetrics.Provider{Matcher: o.matcher, Reader: mgr.GetClient(), Kube: kube, EMQX: gate.EMQX,
			Clock: clock.RealClock{}, Log: log.WithName("custom-metrics")}
		cm, err := custommetrics.NewServer(custommetrics.ServerOptions{Address: o.customMetrics, CertDir: o.certDir, Kubeconfig: cmp.Or(o.kubeconfig, os.Getenv("KUBECONFIG"))}, p)
		if err != nil {
			return err
		}
		if err := mgr.Add(cm); err != nil {
			return fmt.Errorf("custom metrics: %w", err)
		}
	}
	if err := (&webhook.Controller{Gate: gate, Poll: o.controllerPoll}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if err := (&webhook.Membership{Gate: gate, Poll: 15 * time.Second, AutoRebalance: o.autoRebalance, Cooldown: o.cooldown}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("membership controller: %w", err)
	}
	if err := mgr.Add(&webhook.Pruner{Gate: gate, Every: time.Minute}); err != nil {
		return fmt.Errorf("pruner: %w", err)
	}
	if err := mgr.Add(webhook.NewAccessChecker(gate, o.accessInterval, crmetrics.Registry)); err != nil {
		return fmt.Errorf("access check: %w", err)
	}
	if rot != nil {
		if err := mgr.Add(rot); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	started := srv.StartedChecker()
	if o.clientAuth != nil {
		// controller-runtime's check would present no certificate: refused, and logged at every probe.
		addr := net.JoinHostPort(cmp.Or(o.host, "127.0.0.1"), strconv.Itoa(o.port))
		started = func(req *http.Request) error { return o.clientAuth.Probe(req.Context(), addr) }
	}
	if err := mgr.AddReadyzCheck("webhook", started); err != nil {
		return err
	}
	// Ready means the caches the decisions read have synced: a replica that would answer from an
	// empty cache receives no admission request.
	if err := mgr.AddReadyzCheck("informers", webhook.CachesSynced(mgr.GetCache())); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
