package custommetrics

import (
	"context"
	"fmt"
	"sort"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// The metrics, per pod, from GET /api/v5/nodes of the pod's EMQX cluster.
const (
	// LiveConnections is the node's live_connections: MQTT clients connected now. This is the
	// load a HorizontalPodAutoscaler should follow.
	LiveConnections = "emqx_live_connections"
	// Connections is the node's connections: its channels, live ones and disconnected sessions
	// that persist in memory.
	Connections = "emqx_connections"
)

var pods = schema.GroupResource{Resource: "pods"}

// Provider implements provider.CustomMetricsProvider for EMQX pods.
type Provider struct {
	Matcher cluster.Matcher
	Reader  client.Reader        // cached reads of pods
	Kube    kubernetes.Interface // a pod's ConfigMaps and Secrets, when its node name needs its environment
	EMQX    observe.Connector
	Clock   clock.PassiveClock
	Log     logr.Logger
}

// ListAllMetrics implements provider.CustomMetricsProvider.
func (p *Provider) ListAllMetrics() []provider.CustomMetricInfo {
	return []provider.CustomMetricInfo{
		{GroupResource: pods, Namespaced: true, Metric: LiveConnections},
		{GroupResource: pods, Namespaced: true, Metric: Connections},
	}
}

// GetMetricByName implements provider.CustomMetricsProvider.
func (p *Provider) GetMetricByName(
	ctx context.Context,
	name types.NamespacedName,
	info provider.CustomMetricInfo,
	metricSelector labels.Selector,
) (*custom_metrics.MetricValue, error) {
	if err := check(info, metricSelector); err != nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := p.Reader.Get(ctx, client.ObjectKey{Namespace: name.Namespace, Name: name.Name}, &pod); err != nil {
		return nil, provider.NewMetricNotFoundForError(pods, info.Metric, name.Name)
	}
	vals := p.values(ctx, []corev1.Pod{pod}, info.Metric)
	if len(vals) == 0 {
		return nil, provider.NewMetricNotFoundForError(pods, info.Metric, name.Name)
	}
	return &vals[0], nil
}

// GetMetricBySelector implements provider.CustomMetricsProvider.
func (p *Provider) GetMetricBySelector(
	ctx context.Context,
	namespace string,
	selector labels.Selector,
	info provider.CustomMetricInfo,
	metricSelector labels.Selector,
) (*custom_metrics.MetricValueList, error) {
	if err := check(info, metricSelector); err != nil {
		return nil, err
	}
	var list corev1.PodList
	if err := p.Reader.List(ctx, &list, client.InNamespace(namespace),
		client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, fmt.Errorf("list pods in %s matching %s: %w", namespace, selector, err)
	}
	vals := p.values(ctx, list.Items, info.Metric)
	if len(vals) == 0 {
		return nil, provider.NewMetricNotFoundForSelectorError(pods, info.Metric, namespace, selector)
	}
	return &custom_metrics.MetricValueList{Items: vals}, nil
}

// check refuses what is not served: another resource, another metric, metric labels (these
// metrics have none).
func check(info provider.CustomMetricInfo, metricSelector labels.Selector) error {
	if info.GroupResource != pods || info.Metric != LiveConnections && info.Metric != Connections {
		return provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	if metricSelector != nil && !metricSelector.Empty() {
		return provider.NewMetricNotFoundError(info.GroupResource, info.Metric+" (it has no labels to select by)")
	}
	return nil
}

// values reads each EMQX cluster's nodes once and returns the metric of every running pod whose
// node EMQX lists as running, in the order of the pods' names. Pods whose cluster does not
// answer are left out: the autoscaler then treats them as it treats pods without metrics.
func (p *Provider) values(ctx context.Context, list []corev1.Pod, metric string) []custom_metrics.MetricValue {
	groups := map[string][]*corev1.Pod{}
	var keys []string
	for i := range list {
		pod := &list[i]
		if !p.Matcher.Match(pod.Labels) || !cluster.Running(pod) || pod.DeletionTimestamp != nil {
			continue
		}
		key := observe.ClusterKey(pod)
		if groups[key] == nil {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], pod)
	}
	now := metav1.NewTime(p.Clock.Now())
	var out []custom_metrics.MetricValue
	for _, key := range keys {
		o := observe.Node(ctx, p.EMQX, p.Kube, groups[key][0], observe.Question{})
		if o.Err != nil {
			if o.Stale {
				p.EMQX.Forget(groups[key][0])
			}
			p.Log.Info("no connection counts for the cluster", "cluster", key, "error", o.Err.Error())
			continue
		}
		nodes := o.Nodes
		for _, pod := range groups[key] {
			n, _, ok := cluster.FindNode(ctx, p.Kube, nodes, pod)
			if !ok || !n.Running() {
				continue
			}
			out = append(out, value(pod, metric, n, now))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DescribedObject.Name < out[j].DescribedObject.Name })
	return out
}

// value is the metric of one pod from its node.
func value(pod *corev1.Pod, metric string, n emqx.Node, at metav1.Time) custom_metrics.MetricValue {
	v := n.LiveConnections
	if metric == Connections {
		v = n.Connections
	}
	return custom_metrics.MetricValue{
		DescribedObject: custom_metrics.ObjectReference{
			Kind:       "Pod",
			APIVersion: "v1",
			Namespace:  pod.Namespace,
			Name:       pod.Name,
		},
		Metric:    custom_metrics.MetricIdentifier{Name: metric},
		Timestamp: at,
		Value:     *resource.NewQuantity(v, resource.DecimalSI),
	}
}
