package follow

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// Options configure a follower.
type Options struct {
	Namespace string   // "" watches every namespace
	Selectors []string // label selectors; a pod matching any is an EMQX pod
	NetNS     string   // network namespace of the pod IPs ("" = this one)
	Port      int      // the dashboard port, 18083
	Admin     string   // host address of the simulator-only API, such as 127.0.0.1:18999
	DataRoot  string   // where persistent volumes' data lives
	TimeScale float64
	APIKeys   []emqxsim.APIKey // accepted by every cluster, besides those found in the pods
	Reconnect emqxsim.ReconnectConfig
	// NoOperatorGate leaves apps.emqx.io/on-serving to the real emqx-operator.
	NoOperatorGate bool
	Log            func(format string, args ...any)
}

var portForwardGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}

type simCluster struct {
	key    string
	c      *emqxsim.Cluster
	srv    *emqxsim.Server
	cancel context.CancelFunc
}

type podNode struct {
	node    string
	cluster *simCluster
	pod     *corev1.Pod // as last seen (shared with the informer: never modified)
}

// Follower keeps one simulated node per Running EMQX pod.
type Follower struct {
	opts Options
	cs   kubernetes.Interface
	dyn  dynamic.Interface
	ctx  context.Context

	mu       sync.Mutex
	clusters map[string]*simCluster
	pods     map[types.UID]*podNode
	probes   map[types.UID]*podProbes // kubelet's probe state, per pod
	noPF     bool                     // kwok's PortForward API is not served
}

// Run follows the pods until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	if o.Port == 0 {
		o.Port = 18083
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	f := &Follower{
		opts:     o,
		cs:       cs,
		dyn:      dyn,
		ctx:      ctx,
		clusters: map[string]*simCluster{},
		pods:     map[types.UID]*podNode{},
		probes:   map[types.UID]*podProbes{},
	}
	defer f.shutdown()

	if o.Admin != "" {
		ln, err := net.Listen("tcp", o.Admin)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		admin := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = admin.Serve(ln) }()
		defer admin.Close()
		o.Log("simulator API on http://%s/sim/v1/", ln.Addr())
	}
	// Right after kwokctl made the cluster its PortForward API may not be served yet (seen in CI:
	// the first pod got no forward, and no later one either): it is given up to 30 s, before any
	// pod is followed (a wait inside reconcile would hold every other pod's readiness).
	if !portForwardServed(ctx, cs.Discovery(), 30, time.Second) {
		f.noPF = true
		o.Log("no kwok PortForward API in this cluster: kubectl port-forward will not reach simulated nodes")
	}
	var synced []cache.InformerSynced
	for _, sel := range o.Selectors {
		factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(o.Namespace),
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = sel }))
		inf := factory.Core().V1().Pods().Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { f.reconcile(obj) },
			UpdateFunc: func(_, obj any) { f.reconcile(obj) },
			DeleteFunc: func(obj any) { f.reconcile(obj) },
		}); err != nil {
			return fmt.Errorf("pod informer: %w", err)
		}
		factory.Start(ctx.Done())
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return errors.New("pod informer never synced")
	}
	o.Log("following EMQX pods (%v) in namespace %q", o.Selectors, o.Namespace)
	f.kubeletLoop(ctx)
	return nil
}

func (f *Follower) reconcile(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := f.pods[pod.UID]
	// A pod with a deletion timestamp gets SIGTERM: its EMQX stops at once, losing what it holds.
	up := pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != ""
	if !up {
		if rec != nil {
			before := rec.cluster.c.LostSessions()
			f.remove(pod.UID, rec)
			f.opts.Log("pod %s gone: node %s stopped", describe(pod), rec.node)
			if lost := rec.cluster.c.LostSessions() - before; lost > 0 {
				f.opts.Log("pod %s: %d sessions lost with node %s", describe(pod), lost, rec.node)
			}
		}
		return
	}
	if rec == nil {
		var err error
		if rec, err = f.add(pod); err != nil {
			f.opts.Log("pod %s: %v", describe(pod), err)
			return
		}
	}
	rec.pod = pod
	_ = rec.cluster.c.SetReady(rec.node, podReady(pod))
}

func (f *Follower) add(pod *corev1.Pod) (*podNode, error) {
	src := cluster.KubeSources(f.ctx, f.cs, pod.Namespace)
	env := cluster.Env(pod, src)
	name := cluster.NodeName(pod, env)
	sc, err := f.cluster(pod, env, src)
	if err != nil {
		return nil, err
	}
	// The same node name from an older incarnation of the pod (a StatefulSet recreating it).
	for uid, r := range f.pods {
		if r.cluster == sc && r.node == name {
			f.remove(uid, r)
		}
	}
	nc := emqxsim.NodeConfig{Name: name, Role: cluster.Role(pod, env)}
	if key := DataKey(pod); key != "" && f.opts.DataRoot != "" {
		nc.DataDir = filepath.Join(f.opts.DataRoot, key)
	}
	hardened := cluster.HardenedLoopback(env) && emqx.MayHave(Release(pod), emqx.Version.HasHardenedProfile)
	if !hardened {
		// Before the node joins: kwok has the forward by the time anyone sees the node (one asked
		// right after the node appeared could find none: "no forward found").
		f.ensurePortForward(pod)
	}
	if err := sc.c.Rejoin(nc); err != nil {
		return nil, err
	}
	rec := &podNode{node: name, cluster: sc, pod: pod}
	if hardened {
		// The dashboard listens on the pod's loopback only: nothing outside the pod reaches it.
		f.pods[pod.UID] = rec
		f.opts.Log(
			"pod %s: node %s (%s), its API on the pod's 127.0.0.1 only (hardened profile)",
			describe(pod),
			name,
			nc.Role,
		)
		return rec, nil
	}
	var addrs []string
	if DashboardHTTP(env) {
		addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(f.opts.Port))
		ln, err := listenIn(f.opts.NetNS, addr)
		if err != nil {
			_ = sc.c.RemoveNode(name)
			return nil, err
		}
		sc.srv.ServeAlso(name, ln)
		addrs = append(addrs, "http://"+addr)
	}
	if port, cfg, err := DashboardHTTPS(pod, env, src); err != nil {
		f.opts.Log("pod %s: the dashboard's HTTPS listener does not start, as EMQX's would not: %v", describe(pod), err)
	} else if cfg != nil {
		addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port))
		ln, err := listenIn(f.opts.NetNS, addr)
		if err != nil {
			sc.srv.Close(name)
			_ = sc.c.RemoveNode(name)
			return nil, err
		}
		sc.srv.ServeAlso(name, tls.NewListener(ln, cfg))
		addrs = append(addrs, "https://"+addr)
	}
	f.pods[pod.UID] = rec
	f.opts.Log("pod %s: node %s (%s) on %v", describe(pod), name, nc.Role, addrs)
	return rec, nil
}

// remove stops the pod's node. A core node stays listed by EMQX as stopped until it rejoins (the
// same name comes back) or is made to leave; a replicant is forgotten, as EMQX forgets it.
func (f *Follower) remove(uid types.UID, rec *podNode) {
	rec.cluster.srv.Close(rec.node)
	if rec.pod != nil && cluster.Role(rec.pod, cluster.Env(rec.pod, cluster.Sources{})) == "replicant" {
		_ = rec.cluster.c.RemoveNode(rec.node)
	} else {
		_ = rec.cluster.c.StopNode(rec.node)
	}
	delete(f.pods, uid)
	delete(f.probes, uid)
}

// cluster returns the simulated cluster of the pod's EMQX install, creating it with the
// credentials the first pod seen carries.
func (f *Follower) cluster(pod *corev1.Pod, env map[string]string, src cluster.Sources) (*simCluster, error) {
	key := ClusterKey(pod)
	if sc := f.clusters[key]; sc != nil {
		return sc, nil
	}
	users, keys := Credentials(pod, env, src)
	release := Release(pod)
	c, err := emqxsim.New(emqxsim.Config{
		Users: users, APIKeys: append(append([]emqxsim.APIKey{}, f.opts.APIKeys...), keys...),
		Version: release, DurableSessions: DurableSessions(env), Hardened: cluster.HardenedProfile(env),
		Reconnect: f.opts.Reconnect, Log: f.opts.Log, Seed: uint64(len(f.clusters) + 1),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(f.ctx)
	sc := &simCluster{key: key, c: c, srv: emqxsim.NewServer(c), cancel: cancel}
	go c.Run(ctx, clock.RealClock{}, f.opts.TimeScale, 20*time.Millisecond)
	f.clusters[key] = sc
	f.opts.Log("cluster %s: EMQX %s (durable sessions %v), %d API keys from the pod spec, dashboard user %d",
		key, release, DurableSessions(env), len(keys), len(users))
	return sc, nil
}

// ensurePortForward lets `kubectl port-forward pod/NAME :18083` reach the node, through kwok.
func (f *Follower) ensurePortForward(pod *corev1.Pod) {
	if f.noPF {
		return
	}
	pf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
		"metadata": map[string]any{
			"name": pod.Name, "namespace": pod.Namespace,
			"ownerReferences": []any{
				map[string]any{"apiVersion": "v1", "kind": "Pod", "name": pod.Name, "uid": string(pod.UID)},
			},
		},
		"spec": map[string]any{"forwards": []any{map[string]any{
			"ports":  []any{int64(f.opts.Port)},
			"target": map[string]any{"port": int64(f.opts.Port), "address": pod.Status.PodIP},
		}}},
	}}
	client := f.dyn.Resource(portForwardGVR).Namespace(pod.Namespace)
	apply := func() error {
		_, err := client.Create(f.ctx, pf, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var old *unstructured.Unstructured
			if old, err = client.Get(f.ctx, pod.Name, metav1.GetOptions{}); err == nil {
				pf.SetResourceVersion(old.GetResourceVersion())
				_, err = client.Update(f.ctx, pf, metav1.UpdateOptions{})
			}
		}
		return err
	}
	if err := apply(); err != nil {
		f.opts.Log("pod %s: port-forward object: %v", describe(pod), err)
	}
}

// resourceLister is the part of discovery portForwardServed asks.
type resourceLister interface {
	ServerResourcesForGroupVersion(groupVersion string) (*metav1.APIResourceList, error)
}

// portForwardServed says whether the API server serves kwok's PortForwards, asking up to tries
// times, every interval, until it does.
func portForwardServed(ctx context.Context, d resourceLister, tries int, interval time.Duration) bool {
	for try := 0; try < tries; try++ {
		if list, err := d.ServerResourcesForGroupVersion(portForwardGVR.GroupVersion().String()); err == nil {
			for _, r := range list.APIResources {
				if r.Name == portForwardGVR.Resource {
					return true
				}
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
	return false
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (f *Follower) shutdown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sc := range f.clusters {
		sc.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = sc.srv.Shutdown(ctx)
		cancel()
	}
}

// ServeHTTP is the admin API: GET /sim/v1/clusters lists clusters with their stats; every other
// /sim/v1 endpoint goes to the cluster named by ?cluster=NAMESPACE/INSTANCE (optional when there
// is only one).
func (f *Follower) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	keys := make([]string, 0, len(f.clusters))
	for k := range f.clusters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := r.URL.Query().Get("cluster")
	var sc *simCluster
	switch {
	case want != "":
		sc = f.clusters[want]
	case len(keys) == 1:
		sc = f.clusters[keys[0]]
	}
	f.mu.Unlock()
	if r.URL.Path == "/sim/v1/clusters" {
		out := []map[string]any{}
		for _, k := range keys {
			f.mu.Lock()
			c := f.clusters[k].c
			f.mu.Unlock()
			out = append(out, map[string]any{"cluster": k, "stats": c.Snapshot()})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	if sc == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).
			Encode(map[string]any{
				"code":     "SIM_ERROR",
				"message":  "name a cluster with ?cluster=NAMESPACE/INSTANCE",
				"clusters": keys,
			})
		return
	}
	sc.c.SimHandler().ServeHTTP(w, r)
}
