package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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

// Discover lists the EMQX clusters of namespace ns: the Helm chart's and emqx-operator's, and the
// StatefulSets and pods matching extra (a label selector, "" for none), as Helm-style installs.
func Discover(ctx context.Context, cs kubernetes.Interface, ns, extra string) ([]*Cluster, error) {
	byName := map[string]*Cluster{}
	get := func(labels map[string]string, style Style) *Cluster {
		name := Instance(labels)
		c := byName[name]
		if c == nil {
			c = &Cluster{Name: name, Namespace: ns, Style: style}
			byName[name] = c
		}
		if style == Operator {
			c.Style = Operator
		}
		return c
	}
	type source struct {
		selector string
		style    Style
	}
	sources := []source{{HelmSelector, Helm}, {OperatorSelector, Operator}}
	if extra != "" {
		sources = append(sources, source{extra, Helm})
	}
	// Every list at once: the round trips, not the data, are what a user waits for.
	type lists struct {
		sts  *appsv1.StatefulSetList
		rs   *appsv1.ReplicaSetList
		pods *corev1.PodList
	}
	got := make([]lists, len(sources))
	g, gctx := errgroup.WithContext(ctx)
	for i, sel := range sources {
		opts := metav1.ListOptions{LabelSelector: sel.selector}
		g.Go(func() (err error) {
			if got[i].sts, err = cs.AppsV1().StatefulSets(ns).List(gctx, opts); err != nil {
				return listError("statefulsets", ns, err)
			}
			return nil
		})
		if sel.style == Operator {
			g.Go(func() (err error) {
				if got[i].rs, err = cs.AppsV1().ReplicaSets(ns).List(gctx, opts); err != nil {
					return listError("replicasets", ns, err)
				}
				return nil
			})
		}
		g.Go(func() (err error) {
			if got[i].pods, err = cs.CoreV1().Pods(ns).List(gctx, opts); err != nil {
				return listError("pods", ns, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	seen := map[string]bool{} // a pod or StatefulSet matching two selectors counts once
	for i, sel := range sources {
		for _, s := range got[i].sts.Items {
			if seen["sts/"+s.Name] {
				continue
			}
			seen["sts/"+s.Name] = true
			c := get(s.Labels, sel.style)
			c.StatefulSets = append(c.StatefulSets, s)
		}
		if got[i].rs != nil {
			for _, r := range got[i].rs.Items {
				c := get(r.Labels, sel.style)
				c.ReplicaSets = append(c.ReplicaSets, r)
			}
		}
	}
	// Pods after every workload: a pod belongs to a cluster found by any selector.
	for i := range sources {
		for _, p := range got[i].pods.Items {
			if c := byName[Instance(p.Labels)]; c != nil && !seen["pod/"+p.Name] {
				seen["pod/"+p.Name] = true
				c.Pods = append(c.Pods, p)
			}
		}
	}
	out := make([]*Cluster, 0, len(byName))
	for _, c := range byName {
		sort.Slice(c.Pods, func(i, j int) bool { return c.Pods[i].Name < c.Pods[j].Name })
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func listError(what, ns string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("list %s in namespace %q: forbidden; your Kubernetes user needs get/list on %s there: %w", what, ns, what, err)
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

// ForPod finds the cluster of an EMQX pod (extra as in Discover).
func ForPod(ctx context.Context, cs kubernetes.Interface, ns, pod, extra string) (*Cluster, *corev1.Pod, error) {
	p, err := cs.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("pod %q not found in namespace %q; list EMQX pods with: kubectl emqx status -n %s", pod, ns, ns)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get pod %q in namespace %q: %w", pod, ns, err)
	}
	if !IsEMQX(p.Labels) && !matches(extra, p.Labels) {
		return nil, nil, fmt.Errorf("pod %q in namespace %q is not an EMQX pod (it has neither app.kubernetes.io/name=emqx|emqx-enterprise nor apps.emqx.io/managed-by=emqx-operator); list EMQX pods with: kubectl emqx status -n %s", pod, ns, ns)
	}
	clusters, err := Discover(ctx, cs, ns, extra)
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

// matches reports whether labels match the selector extra ("" matches nothing).
func matches(extra string, l map[string]string) bool {
	if extra == "" {
		return false
	}
	sel, err := labels.Parse(extra)
	return err == nil && sel.Matches(labels.Set(l))
}
