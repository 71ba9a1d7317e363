package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Style is how EMQX was installed.
type Style string

// Install styles.
const (
	Helm     Style = "helm"
	Operator Style = "operator"
)

// Cluster is one EMQX cluster in a namespace: its workloads and their pods.
type Cluster struct {
	Name         string
	Namespace    string
	Style        Style
	StatefulSets []appsv1.StatefulSet // Helm: the one StatefulSet; operator: core StatefulSets
	ReplicaSets  []appsv1.ReplicaSet  // operator replicants
	Pods         []corev1.Pod         // sorted by name
}

// Discover lists the EMQX clusters of namespace ns (of every namespace when ns is
// metav1.NamespaceAll): those whose StatefulSets and pods m matches,
// emqx-operator's as such and every other as Helm-style installs.
// Three lists at once (StatefulSets and pods of the namespace, the operator's ReplicaSets), matched
// here: a user waits for round trips, not for bytes.
func Discover(ctx context.Context, cs kubernetes.Interface, ns string, m Matcher) ([]*Cluster, error) {
	var sts *appsv1.StatefulSetList
	var rs *appsv1.ReplicaSetList
	var pods *corev1.PodList
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if sts, err = cs.AppsV1().StatefulSets(ns).List(gctx, metav1.ListOptions{}); err != nil {
			return listError("statefulsets", ns, err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if rs, err = cs.AppsV1().ReplicaSets(ns).List(gctx,
			metav1.ListOptions{LabelSelector: OperatorSelector}); err != nil {
			return listError("replicasets", ns, err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if pods, err = cs.CoreV1().Pods(ns).List(gctx, metav1.ListOptions{}); err != nil {
			return listError("pods", ns, err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if ns != metav1.NamespaceAll {
		return Group(ns, m, sts.Items, rs.Items, pods.Items), nil
	}
	// Every namespace (status -A): instances are named per namespace, so grouped in each.
	type lists struct {
		sts  []appsv1.StatefulSet
		rs   []appsv1.ReplicaSet
		pods []corev1.Pod
	}
	byNS := map[string]*lists{}
	of := func(ns string) *lists {
		if byNS[ns] == nil {
			byNS[ns] = &lists{}
		}
		return byNS[ns]
	}
	for _, s := range sts.Items {
		of(s.Namespace).sts = append(of(s.Namespace).sts, s)
	}
	for _, r := range rs.Items {
		of(r.Namespace).rs = append(of(r.Namespace).rs, r)
	}
	for _, p := range pods.Items {
		of(p.Namespace).pods = append(of(p.Namespace).pods, p)
	}
	var all []*Cluster
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		l := byNS[ns]
		all = append(all, Group(ns, m, l.sts, l.rs, l.pods)...)
	}
	return all, nil
}

// Group builds the EMQX clusters of namespace ns from its workloads and pods, however they were
// read (the plugin lists them with the user's clientset, the webhook reads its cache): the
// StatefulSets and pods m matches, emqx-operator's ReplicaSets, grouped by install instance;
// emqx-operator's as such and every other as Helm-style installs. Pods sorted by name, clusters
// too.
func Group(ns string, m Matcher, sts []appsv1.StatefulSet, rs []appsv1.ReplicaSet, pods []corev1.Pod) []*Cluster {
	byName := map[string]*Cluster{}
	get := func(l map[string]string, st Style) *Cluster {
		name := Instance(l)
		c := byName[name]
		if c == nil {
			c = &Cluster{Name: name, Namespace: ns, Style: st}
			byName[name] = c
		}
		if st == Operator {
			c.Style = Operator
		}
		return c
	}
	for _, s := range sts {
		if m.Match(s.Labels) {
			st := Helm
			if s.Labels[LabelOperatorManaged] == "emqx-operator" {
				st = Operator
			}
			c := get(s.Labels, st)
			c.StatefulSets = append(c.StatefulSets, s)
		}
	}
	for _, r := range rs {
		if r.Labels[LabelOperatorManaged] == "emqx-operator" {
			c := get(r.Labels, Operator)
			c.ReplicaSets = append(c.ReplicaSets, r)
		}
	}
	// Pods after every workload: a pod belongs to a cluster its workloads made.
	for _, p := range pods {
		if !m.Match(p.Labels) {
			continue
		}
		if c := byName[Instance(p.Labels)]; c != nil {
			c.Pods = append(c.Pods, p)
		}
	}
	out := make([]*Cluster, 0, len(byName))
	for _, c := range byName {
		sort.Slice(c.Pods, func(i, j int) bool { return c.Pods[i].Name < c.Pods[j].Name })
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func listError(what, ns string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf(
			"list %s in namespace %q: forbidden; your Kubernetes user needs get/list on %s there: %w",
			what,
			ns,
			what,
			err,
		)
	}
	return fmt.Errorf("list %s in namespace %q: %w", what, ns, err)
}

// NotFoundHint says what Discover looked for.
const NotFoundHint = "looked for StatefulSets labelled app.kubernetes.io/name=emqx or emqx-enterprise (Helm chart) " +
	"and StatefulSets/ReplicaSets labelled apps.emqx.io/managed-by=emqx-operator; for other labels pass --emqx-selector"

// Select picks the cluster named name, or the only one when name is "".
func Select(clusters []*Cluster, name, ns string) (*Cluster, error) {
	var names []string
	for _, c := range clusters {
		if c.Name == name {
			return c, nil
		}
		names = append(names, c.Name)
	}
	switch {
	case name != "":
		if len(names) == 0 {
			return nil, fmt.Errorf("no EMQX cluster %q in namespace %q (%s); is -n right?", name, ns, NotFoundHint)
		}
		return nil, fmt.Errorf("no EMQX cluster %q in namespace %q; there is: %s", name, ns, strings.Join(names, ", "))
	case len(clusters) == 1:
		return clusters[0], nil
	case len(clusters) == 0:
		return nil, fmt.Errorf("no EMQX cluster in namespace %q (%s); pick the namespace with -n", ns, NotFoundHint)
	}
	return nil, fmt.Errorf("namespace %q has %d EMQX clusters (%s); name one, such as: kubectl emqx status %s -n %s",
		ns, len(clusters), strings.Join(names, ", "), names[0], ns)
}

// ForPod finds the cluster of an EMQX pod (one m matches).
func ForPod(ctx context.Context, cs kubernetes.Interface, ns, pod string, m Matcher) (*Cluster, *corev1.Pod, error) {
	p, err := cs.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf(
			"pod %q not found in namespace %q; list EMQX pods with: kubectl emqx status -n %s",
			pod,
			ns,
			ns,
		)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get pod %q in namespace %q: %w", pod, ns, err)
	}
	if !m.Match(p.Labels) {
		return nil, nil, fmt.Errorf(
			"pod %q in namespace %q is not an EMQX pod (it has neither app.kubernetes.io/name=emqx|emqx-enterprise "+
				"nor apps.emqx.io/managed-by=emqx-operator); list EMQX pods with: kubectl emqx status -n %s",
			pod,
			ns,
			ns,
		)
	}
	clusters, err := Discover(ctx, cs, ns, m)
	if err != nil {
		return nil, nil, err
	}
	c, err := Select(clusters, Instance(p.Labels), ns)
	if err != nil {
		return nil, nil, fmt.Errorf("pod %q: %w", pod, err)
	}
	return c, p, nil
}

// Pod returns the cluster's pod by name.
func (c *Cluster) Pod(name string) (*corev1.Pod, bool) {
	for i := range c.Pods {
		if c.Pods[i].Name == name {
			return &c.Pods[i], true
		}
	}
	return nil, false
}

// Running reports whether a pod's containers run: phase Running with an IP, not terminating. Its
// EMQX may hold clients whatever its readiness says.
func Running(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != ""
}

// Ready reports whether a pod is Ready and not terminating.
func Ready(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
