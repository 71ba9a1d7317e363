package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/certs"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/version"
	"github.com/kubectl-emqx/kubectl-emqx/webhook"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/admission"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/controller"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/custommetrics"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/effects"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/emqxcache"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// leaderElectionID names the controller's lease; the routing gate reads it to know a controller runs.
const leaderElectionID = "emqx-webhook-controller"

// Run starts the webhook and its controllers and returns when ctx ends or one of them fails.
func (o *Options) Run(ctx context.Context) error {
	if o.CheckMetrics != "" {
		return checkMetrics(ctx, o.CheckMetrics, serviceAccountToken, os.Stdout)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.Log)))
	log := ctrl.Log.WithName("emqx-webhook")
	log.Info("starting", "version", version.Version, "namespace", o.Namespace, "tls", o.TLSMode)
	cfg, err := restConfig(o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	rot, err := o.rotator(ctx, cfg, kube, log)
	if err != nil {
		return err
	}
	selectors, err := emqxcache.Selectors(o.matcher)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 clientgoscheme.Scheme,
		Metrics:                o.metricsOptions(),
		HealthProbeBindAddress: o.HealthAddr,
		LeaderElection:         o.LeaderElect,
		LeaderElectionID:       leaderElectionID,
		// A replica that stops hands the lease over at once instead of after its expiry.
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionNamespace:       o.Namespace,
		Cache:                         o.cacheOptions(),
		NewCache:                      emqxcache.New(selectors),
		WebhookServer: crwebhook.NewServer(crwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir,
			TLSOpts: o.serverTLS(log)}),
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	conns := &observe.PodConnector{Matcher: o.matcher, Reader: mgr.GetClient(), Secrets: kube, Timeout: o.EMQXTimeout,
		SharedFor: o.EMQXSharedFor, Clock: clock.RealClock{}, Rejected: cluster.Rejected{Clock: clock.RealClock{}}}
	metrics := webhook.NewMetrics(crmetrics.Registry, clock.RealClock{})
	exec := &effects.Executor{
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorderFor("emqx-webhook"),
		Clock:     clock.RealClock{},
		Log:       log.WithName("effects"),
		EMQX:      conns,
		Starts:    &effects.StartTimes{},
		Counted:   metrics.Action,
		Evacuated: metrics.Evacuated,
	}
	gate := &webhook.Gate{
		Matcher: o.matcher,
		Client:  mgr.GetClient(),
		Kube:    kube,
		EMQX:    conns,
		Exec:    exec,
		Clock:   clock.RealClock{},
		Config:  o.Decisions,
		Log:     log.WithName("gate"),
		Metrics: metrics,
	}
	gate.Metrics.ClientAuth(o.clientAuth != nil)
	env := &controller.Env{
		Matcher: o.matcher,
		Client:  mgr.GetClient(),
		Kube:    kube,
		EMQX:    conns,
		Exec:    exec,
		Clock:   clock.RealClock{},
		Config:  o.Decisions,
		Log:     log.WithName("controller"),
	}
	live, err := liveReader(cfg)
	if err != nil {
		return err
	}
	o.register(mgr, gate, kube, live)
	if err := o.addRunnables(mgr, gate, env, rot, log); err != nil {
		return err
	}
	if err := o.addChecks(mgr); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// liveReader reads pods the cache does not hold, one per eviction of such a pod, with a rate limit
// of its own (the manager's client has none): the API server itself asks at that rate; the limit
// only stops a flood, and a read that waits past its bound holds the eviction (retried), never
// lets it go.
func liveReader(cfg *rest.Config) (client.Reader, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 500, 1000
	r, err := client.New(c, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for uncached reads: %w", err)
	}
	return r, nil
}

// restConfig: in the cluster, controller-runtime's (client-side rate limiting off: the API
// server's priority and fairness decides); with --kubeconfig the same, where client-go would
// limit the webhook to 5 requests/s and starve its writes in a mass drain (seen in bench-scale).
func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		return ctrl.GetConfig()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	if cfg.QPS == 0 {
		cfg.QPS = -1
	}
	return cfg, nil
}

// rotator is the self-signed certificate rotator (nil with --tls=files), its certificate made
// before the webhook server starts.
func (o *Options) rotator(
	ctx context.Context,
	cfg *rest.Config,
	kube kubernetes.Interface,
	log logr.Logger,
) (*certs.Rotator, error) {
	if o.TLSMode != "self-signed" {
		return nil, nil
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	var apiServices []string
	if o.CustomMetricsAddr != "0" {
		apiServices = []string{o.APIService}
	}
	var ips []net.IP
	for _, s := range o.IPs {
		ips = append(ips, net.ParseIP(s)) // Validate checked them
	}
	rot := &certs.Rotator{
		Kube:               kube,
		Dynamic:            dyn,
		APIServices:        apiServices,
		Namespace:          o.Namespace,
		SecretName:         o.TLSSecret,
		DNSNames:           o.DNSNames,
		IPs:                ips,
		CertDir:            o.CertDir,
		ValidatingWebhooks: []string{o.WebhookConfig},
		MutatingWebhooks:   []string{o.MutatingConfig},
		Validity:           365 * 24 * time.Hour,
		RenewBefore:        30 * 24 * time.Hour,
		Clock:              clock.RealClock{},
		Log:                log.WithName("certs"),
	}
	if err := rot.Ensure(ctx); err != nil {
		return nil, err
	}
	return rot, nil
}

// serverTLS: HTTP/2 off (tlsDefaults), and the API server's client certificate required when
// configured; said at start either way.
func (o *Options) serverTLS(log logr.Logger) []func(*tls.Config) {
	if o.clientAuth == nil {
		log.Info("WARNING: the admission port takes reviews from any caller that reaches it; a forged eviction can "+
			"start an evacuation. Require the API server's client certificate (--client-ca-file), or admit only the "+
			"API server's addresses to port 9443 (NetworkPolicy)", "metric", "emqx_webhook_client_auth_required 0")
		return []func(*tls.Config){tlsDefaults}
	}
	log.Info("admission callers must present a client certificate", "ca", o.ClientCA, "names", o.ClientNames)
	return []func(*tls.Config){tlsDefaults, o.clientAuth.Apply}
}

// register puts the admission handlers on the webhook server.
func (o *Options) register(mgr manager.Manager, gate *webhook.Gate, kube kubernetes.Interface, live client.Reader) {
	decoder := cradmission.NewDecoder(mgr.GetScheme())
	reader := mgr.GetClient()
	routing := &admission.PodCreateHandler{Matcher: o.matcher, Reader: reader, All: o.RoutingGate,
		Live: mgr.GetAPIReader()}
	if o.LeaderElect {
		routing.Alive = admission.LeaseAlive(kube, o.Namespace, leaderElectionID, clock.RealClock{})
	}
	srv := mgr.GetWebhookServer()
	requests := admission.NewRequests(crmetrics.Registry)
	uncached := admission.Uncached{Live: live, Watched: o.WatchNamespaces}
	for path, h := range map[string]cradmission.Handler{
		admission.PathEviction: &admission.EvictionHandler{Gate: gate, Reader: reader, Uncached: uncached},
		admission.PathPodDelete: &admission.PodDeleteHandler{Gate: gate, Decoder: decoder, Reader: reader,
			Uncached: uncached},
		admission.PathScale:     &admission.ScaleHandler{Gate: gate, Reader: reader, Decoder: decoder},
		admission.PathPodCreate: routing,
	} {
		srv.Register(path, requests.Count(path, admission.Bounded(&crwebhook.Admission{Handler: h})))
	}
}

// addRunnables adds the controllers, the access check, the pruner, the rotator and the custom
// metrics API to the manager.
func (o *Options) addRunnables(mgr manager.Manager, gate *webhook.Gate, env *controller.Env, rot *certs.Rotator,
	log logr.Logger) error {
	if err := (&controller.Controller{Env: env, Poll: o.ControllerPoll}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	membership := &controller.Membership{
		Env:           env,
		Poll:          15 * time.Second,
		AutoRebalance: o.AutoRebalance,
		Cooldown:      o.Cooldown,
		LetGo:         gate.LetGoRecently,
	}
	if err := membership.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("membership controller: %w", err)
	}
	runnables := []manager.Runnable{&controller.Pruner{Env: env, Every: time.Minute, Locks: gate},
		controller.NewAccessChecker(env, o.AccessInterval, crmetrics.Registry),
		controller.NewRemovals(o.matcher, mgr.GetCache(), crmetrics.Registry)}
	if rot != nil {
		runnables = append(runnables, rot)
	}
	if o.CustomMetricsAddr != "0" {
		// After the certificate exists: the server loads it (and reloads it when it changes).
		p := &custommetrics.Provider{Matcher: o.matcher, Reader: mgr.GetClient(), Kube: env.Kube, EMQX: env.EMQX,
			Clock: clock.RealClock{}, Log: log.WithName("custom-metrics")}
		cm, err := custommetrics.NewServer(custommetrics.ServerOptions{Address: o.CustomMetricsAddr, CertDir: o.CertDir,
			Kubeconfig: cmp.Or(o.Kubeconfig, os.Getenv("KUBECONFIG"))}, p)
		if err != nil {
			return err
		}
		runnables = append(runnables, cm)
	}
	for _, r := range runnables {
		if err := mgr.Add(r); err != nil {
			return fmt.Errorf("add %T: %w", r, err)
		}
	}
	return nil
}

// addChecks: /healthz, and /readyz once the webhook server answers and the caches the decisions
// read have synced (a replica that would answer from an empty cache receives no request).
func (o *Options) addChecks(mgr manager.Manager) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	started := mgr.GetWebhookServer().StartedChecker()
	if o.clientAuth != nil {
		// controller-runtime's check would present no certificate: refused, and logged at every probe.
		addr := net.JoinHostPort(cmp.Or(o.Host, "127.0.0.1"), strconv.Itoa(o.Port))
		started = func(req *http.Request) error { return o.clientAuth.Probe(req.Context(), addr) }
	}
	if err := mgr.AddReadyzCheck("webhook", started); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("informers", admission.CachesSynced(mgr.GetCache()))
}
