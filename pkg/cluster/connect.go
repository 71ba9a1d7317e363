package cluster

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// DashboardPort is EMQX's default dashboard (REST API) port.
const DashboardPort = 18083

// Access says how to reach an EMQX cluster's API.
type Access struct {
	Config *rest.Config         // for port-forwarding through the API server
	Kube   kubernetes.Interface // reads pods and Secrets with the user's own credentials
	// URL, when set, is EMQX's API address: no port-forward and no Kubernetes lookups of credentials.
	URL string
	// Creds given by flags or environment. Empty: find them in the cluster.
	Creds   emqx.Credentials
	Options []emqx.Option
	// Forward reaches a pod's port and returns a base URL; nil means PortForward through the API
	// server.
	Forward func(ctx context.Context, pod *corev1.Pod, port int) (url string, stop func(), err error)
	// Rejected, when set, keeps the credentials EMQX refused from being tried again until they
	// change (a program that connects often must not lock the dashboard's users out).
	Rejected *Rejected
}

// Conn is an authenticated EMQX client and what it goes through.
type Conn struct {
	*emqx.Client
	Via   string // "pod mqtt/emqx-0 (port-forward)" or the URL
	Creds string // which credentials worked, never a secret
	// Through is the pod the connection reaches EMQX at (nil with a URL): whoever keeps the
	// connection checks that this pod, with this UID and IP, is still there before reusing it.
	Through *corev1.Pod
	stop    func()
}

// StillThrough reports whether live is the pod the connection was made through: the same UID and
// IP, still running. A pod that went and a new one that has its IP now must not be sent the
// cluster's credentials, nor believed.
func (c *Conn) StillThrough(live *corev1.Pod) bool {
	return c.Through != nil && live != nil && live.UID == c.Through.UID &&
		live.Status.PodIP == c.Through.Status.PodIP &&
		live.DeletionTimestamp == nil &&
		Running(live)
}

// Close ends the port-forward, if any.
func (c *Conn) Close() {
	if c.stop != nil {
		c.stop()
	}
}

// credential is one way to authenticate, with where it came from.
type credential struct {
	creds  emqx.Credentials
	source string
}

// Connect returns a client for the cluster's API. Without a URL it port-forwards through the API
// server to a Ready pod, preferring pods not named in avoid (those about to be evacuated or
// removed). Credentials, first that applies: the given ones; the operator's bootstrap API key
// Secret; the dashboard user of the pods' spec. When none works, the error lists what was tried.
func Connect(ctx context.Context, a Access, cl *Cluster, avoid ...string) (*Conn, error) {
	if a.URL != "" {
		cands := []credential{{a.Creds, "the given credentials"}}
		if a.Creds == (emqx.Credentials{}) {
			cands = []credential{
				{emqx.Credentials{Username: "admin", Password: "public"}, "EMQX's default dashboard user admin"},
			}
		}
		return authenticate(ctx, a, a.URL, a.URL, a.URL, nil, cands)
	}
	pod, err := pickPod(cl, avoid)
	if err != nil {
		return nil, err
	}
	forward := a.Forward
	if forward == nil {
		forward = func(ctx context.Context, pod *corev1.Pod, port int) (string, func(), error) {
			return PortForward(ctx, a.Config, a.Kube, pod, port)
		}
	}
	// The credentials are read while the port-forward is set up: two waits become one.
	cands := []credential{{a.Creds, "the given credentials"}}
	var read sync.WaitGroup
	if a.Creds == (emqx.Credentials{}) {
		read.Go(func() { cands = clusterCredentials(ctx, a.Kube, cl, pod) })
	}
	port, tlsConf, err := dashboardTLS(ctx, a.Kube, cl, pod)
	if err != nil {
		read.Wait()
		return nil, err
	}
	url, stop, err := forward(ctx, pod, port)
	read.Wait()
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		// EMQX's API over HTTPS only: the forward's address with the dashboard's CA and names.
		url = "https://" + strings.TrimPrefix(url, "http://")
		a.Options = append(slices.Clone(a.Options), emqx.WithTLS(tlsConf))
	}
	via := fmt.Sprintf("pod %s/%s (port-forward)", pod.Namespace, pod.Name)
	conn, err := authenticate(ctx, a, cl.Namespace+"/"+cl.Name, url, via, stop, cands)
	if err == nil {
		conn.Through = pod
	}
	if err != nil {
		stop()
		if emqx.IsUnreachable(err) && HardenedLoopback(Env(pod, KubeSources(ctx, a.Kube, pod.Namespace))) {
			err = fmt.Errorf(
				"%w; pod %s runs EMQX with EMQX_SECURITY_PROFILE=hardened, which binds the dashboard to 127.0.0.1 "+
					"(EMQX 6.2.1+): set EMQX_DASHBOARD__LISTENERS__HTTP__BIND=0.0.0.0:18083 so the API can be reached",
				err,
				pod.Name,
			)
		}
		return nil, err
	}
	return conn, nil
}

// authenticate tries each candidate in order; cluster names the EMQX cluster for a.Rejected.
func authenticate(
	ctx context.Context,
	a Access,
	cluster, url, via string,
	stop func(),
	cands []credential,
) (*Conn, error) {
	var tried []string
	var hint string
	for _, cand := range cands {
		if cand.creds == (emqx.Credentials{}) {
			tried = append(tried, cand.source)
			continue
		}
		if code := a.Rejected.refused(cluster, cand.creds); code != "" {
			tried = append(
				tried,
				fmt.Sprintf("%s (refused earlier: %s; not tried again until it changes)", cand.source, code),
			)
			hint = cmp.Or(hint, emqx.RefusalHint(code))
			continue
		}
		c, err := emqx.New(url, cand.creds, a.Options...)
		if err != nil {
			return nil, err
		}
		_, err = c.Nodes(ctx)
		e, _ := errors.AsType[*emqx.Error](err)
		switch {
		case err == nil:
			return &Conn{Client: c, Via: via, Creds: cand.source, stop: stop}, nil
		case emqx.IsUnauthorized(err), e != nil && e.Code == emqx.CodeUnauthorizedRole:
			a.Rejected.remember(cluster, cand.creds, e.Code)
			tried = append(tried, fmt.Sprintf("%s (%s)", cand.source, e.Code))
			hint = cmp.Or(hint, emqx.RefusalHint(e.Code))
		default:
			return nil, fmt.Errorf("reach EMQX through %s: %w", via, err)
		}
	}
	return nil, &CredentialsError{Via: via, Tried: tried, Hint: hint}
}

// CredentialsError says that EMQX refused every credential tried (never their secrets).
type CredentialsError struct {
	Via   string
	Tried []string
	Hint  string // what the refusals say beyond a wrong secret, "" when nothing
}

func (e *CredentialsError) Error() string {
	s := fmt.Sprintf("no credentials EMQX at %s accepts; tried: %s. ", e.Via, strings.Join(e.Tried, "; "))
	if e.Hint != "" {
		s += e.Hint + ". "
	}
	return s + "Pass --api-key/--api-secret or --username/--password (or EMQX_API_KEY/EMQX_API_SECRET, " +
		"EMQX_USERNAME/EMQX_PASSWORD)"
}

// AnnCredentialsSecret on an EMQX StatefulSet names a Secret of its namespace holding the
// credentials of its EMQX API: keys api-key and api-secret, or username and password. The plugin
// and the webhook try it first.
const AnnCredentialsSecret = "emqx.kubectl-emqx.io/credentials-secret"

// clusterCredentials are the credentials a cluster's own objects carry, in the one order plugin
// and webhook use: the Secret a StatefulSet names in AnnCredentialsSecret; the operator's
// bootstrap API key; the dashboard user of the pod's environment.
func clusterCredentials(ctx context.Context, kube kubernetes.Interface, cl *Cluster, pod *corev1.Pod) []credential {
	out := namedCredentials(ctx, kube, cl)
	readSecret := func(name string) (map[string][]byte, error) {
		s, err := kube.CoreV1().Secrets(cl.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return s.Data, nil
	}
	secretName := cl.Name + "-bootstrap-api-key"
	key := "bootstrap_api_key"
	env := Env(pod, KubeSources(ctx, kube, cl.Namespace))
	if name, k, ok := BootstrapSecret(pod, env); ok {
		secretName, key = name, k
	}
	if data, err := readSecret(secretName); err == nil {
		keys := ParseBootstrapFile(string(data[key]))
		if len(keys) > 0 {
			k := keys[len(keys)-1]
			for _, c := range keys {
				if c.Key == "emqx-operator-controller" {
					k = c
				}
			}
			out = append(
				out,
				credential{
					emqx.Credentials{APIKey: k.Key, APISecret: k.Secret},
					fmt.Sprintf("API key %q from Secret %s", k.Key, secretName),
				},
			)
		}
	} else if cl.Style == Operator || !apierrors.IsNotFound(err) {
		out = append(out, credential{source: fmt.Sprintf("Secret %s (%v)", secretName, shortErr(err))})
	}
	user, pw := DashboardUser(env)
	out = append(
		out,
		credential{
			emqx.Credentials{Username: user, Password: pw},
			fmt.Sprintf("dashboard user %q from pod %s's spec", user, pod.Name),
		},
	)
	return out
}

// namedCredentials reads the Secrets the cluster's StatefulSets name in AnnCredentialsSecret. A
// Secret that cannot be read or has neither pair of keys is reported among what was tried.
func namedCredentials(ctx context.Context, kube kubernetes.Interface, cl *Cluster) []credential {
	var out []credential
	for _, s := range cl.StatefulSets {
		name := s.Annotations[AnnCredentialsSecret]
		if name == "" {
			continue
		}
		source := fmt.Sprintf("Secret %s named by %s on statefulset %s", name, AnnCredentialsSecret, s.Name)
		sec, err := kube.CoreV1().Secrets(cl.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			out = append(out, credential{source: fmt.Sprintf("%s (%s)", source, shortErr(err))})
			continue
		}
		c := emqx.Credentials{APIKey: string(sec.Data["api-key"]), APISecret: string(sec.Data["api-secret"]),
			Username: string(sec.Data["username"]), Password: string(sec.Data["password"])}
		if c.APIKey == "" && c.Username == "" {
			out = append(out, credential{source: source + " (it has neither api-key/api-secret nor username/password)"})
			continue
		}
		out = append(out, credential{c, source})
	}
	return out
}

func shortErr(err error) string {
	switch {
	case apierrors.IsNotFound(err):
		return "not found"
	case apierrors.IsForbidden(err):
		return "forbidden to read it"
	}
	return err.Error()
}

// pickPod chooses the pod to reach the API through: any node answers for the whole cluster, so
// Ready pods first, then running ones (a pod that evacuates may be NotReady and still serve the
// API), not terminating, not avoided unless nothing else is left.
func pickPod(cl *Cluster, avoid []string) (*corev1.Pod, error) {
	for _, pass := range []func(*corev1.Pod) bool{
		func(p *corev1.Pod) bool { return Ready(p) && !slices.Contains(avoid, p.Name) },
		func(p *corev1.Pod) bool { return Running(p) && !slices.Contains(avoid, p.Name) },
		Ready,
		Running,
	} {
		for i := range cl.Pods {
			if pass(&cl.Pods[i]) {
				return &cl.Pods[i], nil
			}
		}
	}
	return nil, fmt.Errorf(
		"EMQX cluster %q in namespace %q has no running pod to reach its API through; check: kubectl get pods -n %s",
		cl.Name,
		cl.Namespace,
		cl.Namespace,
	)
}

func dashboardPort(pod *corev1.Pod) int {
	if c := EMQXContainer(&pod.Spec); c != nil {
		for _, p := range c.Ports {
			if p.Name == "dashboard" {
				return int(p.ContainerPort)
			}
		}
	}
	return DashboardPort
}

// PortForward forwards a local loopback port to the pod's port through the API server, as
// `kubectl port-forward` does (websocket, falling back to SPDY). It returns the local base URL
// and a function that ends the forward.
func PortForward(
	ctx context.Context,
	cfg *rest.Config,
	kube kubernetes.Interface,
	pod *corev1.Pod,
	port int,
) (string, func(), error) {
	req := kube.CoreV1().
		RESTClient().
		Post().
		Resource("pods").
		Namespace(pod.Namespace).
		Name(pod.Name).
		SubResource("portforward")
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward to pod %s: %w", pod.Name, err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, req.URL())
	if ws, err := portforward.NewSPDYOverWebsocketDialer(req.URL(), cfg); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	var errOut bytes.Buffer
	fw, err := portforward.NewOnAddresses(
		dialer,
		[]string{"127.0.0.1"},
		[]string{fmt.Sprintf("0:%d", port)},
		stop,
		ready,
		io.Discard,
		&errOut,
	)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward to pod %s: %w", pod.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case <-ready:
	case err := <-done:
		return "", nil, fmt.Errorf(
			"port-forward to pod %s/%s port %d: %w (needs create on pods/portforward)",
			pod.Namespace,
			pod.Name,
			port,
			err,
		)
	case <-ctx.Done():
		close(stop)
		return "", nil, ctx.Err()
	case <-timer.C:
		close(stop)
		return "", nil, fmt.Errorf(
			"port-forward to pod %s/%s port %d: not ready after 30s",
			pod.Namespace,
			pod.Name,
			port,
		)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		close(stop)
		return "", nil, fmt.Errorf("port-forward to pod %s: no local port: %v", pod.Name, err)
	}
	var once sync.Once
	return fmt.Sprintf("http://127.0.0.1:%d", ports[0].Local), func() { once.Do(func() { close(stop) }) }, nil
}
