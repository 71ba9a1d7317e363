package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
)

// Report gathers a support bundle of one EMQX cluster: `kubectl emqx report`. What cannot be
// read is named in the bundle's problems, and the rest is still gathered.
type Report struct {
	Cluster string
	// WebhookNamespace is where emqx-webhook runs: its pods' logs are included ("" skips them).
	WebhookNamespace string
	LogLines         int64 // the last lines of each webhook pod's log
}

// File is one file of the bundle.
type File struct {
	Name string
	Data []byte
}

// Bundle is what Report gathered, in the order it was read.
type Bundle struct {
	Cluster, Namespace string
	Files              []File
	Problems           []string // what could not be read, and why
}

// Redacted is what replaces a secret value in the bundle.
const Redacted = "REDACTED"

// secretName matches the names of environment variables whose values are secrets.
func secretName() *regexp.Regexp {
	return regexp.MustCompile(`(?i)pass|secret|token|key|cred|cookie|cert`)
}

// Run gathers the bundle. Secrets are read only to reach EMQX, as every command does, and never
// written into it; an environment variable whose name says it holds a secret appears as REDACTED.
func (r Report) Run(ctx context.Context, a Access) (Bundle, error) {
	clusters, err := cluster.Discover(ctx, a.Kube, a.Namespace, a.Matcher)
	if err != nil {
		return Bundle{}, err
	}
	c, err := cluster.Select(clusters, r.Cluster, a.Namespace)
	if err != nil {
		return Bundle{}, err
	}
	b := Bundle{Cluster: c.Name, Namespace: c.Namespace}
	add := func(name string, v any) {
		data, err := yaml.Marshal(v)
		if err != nil {
			b.Problems = append(b.Problems, fmt.Sprintf("%s: %v", name, err))
			return
		}
		b.Files = append(b.Files, File{Name: name, Data: data})
	}
	pods := make([]corev1.Pod, len(c.Pods))
	for i := range c.Pods {
		c.Pods[i].DeepCopyInto(&pods[i])
		redactWorkload(&pods[i].ObjectMeta, &pods[i].Spec)
	}
	add("pods.yaml", pods)
	sts := make([]appsv1.StatefulSet, len(c.StatefulSets))
	for i := range c.StatefulSets {
		c.StatefulSets[i].DeepCopyInto(&sts[i])
		redactWorkload(&sts[i].ObjectMeta, &sts[i].Spec.Template.Spec)
	}
	add("statefulsets.yaml", sts)
	if len(c.ReplicaSets) > 0 {
		rs := make([]appsv1.ReplicaSet, len(c.ReplicaSets))
		for i := range c.ReplicaSets {
			c.ReplicaSets[i].DeepCopyInto(&rs[i])
			redactWorkload(&rs[i].ObjectMeta, &rs[i].Spec.Template.Spec)
		}
		add("replicasets.yaml", rs)
	}
	if events, err := r.events(ctx, a, c); err != nil {
		b.Problems = append(b.Problems, "events: "+err.Error())
	} else {
		add("events.yaml", events)
	}
	r.emqx(ctx, a, c, &b)
	r.webhookLogs(ctx, a, &b)
	return b, ctx.Err()
}

// events are the namespace's Events about the cluster's pods and workloads.
func (r Report) events(ctx context.Context, a Access, c *cluster.Cluster) ([]corev1.Event, error) {
	list, err := a.Kube.CoreV1().Events(c.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, p := range c.Pods {
		names["Pod/"+p.Name] = true
	}
	for _, s := range c.StatefulSets {
		names["StatefulSet/"+s.Name] = true
	}
	for _, s := range c.ReplicaSets {
		names["ReplicaSet/"+s.Name] = true
	}
	out := []corev1.Event{}
	for _, e := range list.Items {
		if names[e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name] {
			e.ManagedFields = nil
			out = append(out, e)
		}
	}
	return out, nil
}

// emqx adds what EMQX says of its nodes, evacuations and rebalances, and the status table's report.
func (r Report) emqx(ctx context.Context, a Access, c *cluster.Cluster, b *Bundle) {
	t, err := a.connected(ctx, c)
	if err != nil {
		b.Problems = append(b.Problems, "EMQX's API: "+err.Error())
		return
	}
	defer t.Close()
	asJSON := func(name string, v any, err error) {
		if err != nil {
			b.Problems = append(b.Problems, name+": "+err.Error())
			return
		}
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			b.Problems = append(b.Problems, name+": "+err.Error())
			return
		}
		b.Files = append(b.Files, File{Name: name, Data: append(data, '\n')})
	}
	nodes, nerr := t.Conn.Nodes(ctx)
	asJSON("emqx/nodes.json", nodes, nerr)
	g, gerr := t.Conn.GlobalStatus(ctx)
	asJSON("emqx/global-status.json", g, gerr)
	if nerr == nil && gerr == nil { // the status report judges those same answers
		rep, err := judge(ctx, t, nodes, g)
		asJSON("status.json", rep, err)
	}
}

// webhookLogs adds the last lines of each emqx-webhook pod's log.
func (r Report) webhookLogs(ctx context.Context, a Access, b *Bundle) {
	if r.WebhookNamespace == "" {
		return
	}
	pods, err := a.Kube.CoreV1().Pods(r.WebhookNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=emqx-webhook",
	})
	if err != nil {
		b.Problems = append(b.Problems, fmt.Sprintf("emqx-webhook's pods in %s: %v", r.WebhookNamespace, err))
		return
	}
	if len(pods.Items) == 0 {
		b.Problems = append(b.Problems, fmt.Sprintf("no emqx-webhook pod in namespace %s (--webhook-namespace)",
			r.WebhookNamespace))
	}
	for _, p := range pods.Items {
		lines := r.LogLines
		stream, err := a.Kube.CoreV1().Pods(r.WebhookNamespace).GetLogs(p.Name, &corev1.PodLogOptions{
			TailLines: &lines,
		}).Stream(ctx)
		if err != nil {
			b.Problems = append(b.Problems, fmt.Sprintf("log of %s/%s: %v", r.WebhookNamespace, p.Name, err))
			continue
		}
		data, err := io.ReadAll(io.LimitReader(stream, 64<<20))
		_ = stream.Close()
		if err != nil {
			b.Problems = append(b.Problems, fmt.Sprintf("log of %s/%s: %v", r.WebhookNamespace, p.Name, err))
		}
		b.Files = append(b.Files, File{Name: "webhook/" + p.Name + ".log", Data: data})
	}
}

// redactWorkload strips what a bundle must not carry or does not need from a pod or workload:
// managed fields, kubectl's last-applied copy (it repeats the spec, values included), and the
// values of environment variables named like secrets.
func redactWorkload(m *metav1.ObjectMeta, spec *corev1.PodSpec) {
	m.ManagedFields = nil
	delete(m.Annotations, corev1.LastAppliedConfigAnnotation)
	redactPodSpec(spec)
}

// redactPodSpec replaces the values of environment variables named like secrets.
func redactPodSpec(s *corev1.PodSpec) {
	re := secretName()
	for _, cs := range [][]corev1.Container{s.InitContainers, s.Containers} {
		for i := range cs {
			for j, e := range cs[i].Env {
				if e.Value != "" && re.MatchString(e.Name) {
					cs[i].Env[j].Value = Redacted
				}
			}
		}
	}
	for i := range s.EphemeralContainers {
		for j, e := range s.EphemeralContainers[i].Env {
			if e.Value != "" && re.MatchString(e.Name) {
				s.EphemeralContainers[i].Env[j].Value = Redacted
			}
		}
	}
}
