package emqxcache

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
)

// Selectors are the alternatives that pick EMQX's pods and ReplicaSets: the Helm chart's,
// emqx-operator's and, when given, --emqx-selector.
func Selectors(m cluster.Matcher) ([]labels.Selector, error) {
	var out []labels.Selector
	for _, s := range []string{cluster.HelmSelector, cluster.OperatorSelector} {
		sel, err := labels.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("selector %q: %w", s, err)
		}
		out = append(out, sel)
	}
	if m.Extra != nil && !m.Extra.Empty() {
		out = append(out, m.Extra)
	}
	return out, nil
}

// New is a cache.NewCacheFunc: a union of one cache per selector (see the package's doc).
func New(selectors []labels.Selector) cache.NewCacheFunc {
	return func(cfg *rest.Config, opts cache.Options) (cache.Cache, error) {
		if len(selectors) == 0 {
			return nil, errors.New("emqxcache: no selector")
		}
		var caches []cache.Cache
		for i, sel := range selectors {
			o := opts
			o.ByObject = map[client.Object]cache.ByObject{}
			for obj, by := range opts.ByObject {
				o.ByObject[obj] = by
			}
			o.ByObject[&corev1.Pod{}] = cache.ByObject{Label: sel, Transform: slimPod(opts.DefaultTransform)}
			o.ByObject[&appsv1.ReplicaSet{}] = cache.ByObject{Label: sel}
			if i == 0 {
				o.ByObject[&appsv1.StatefulSet{}] = cache.ByObject{Transform: slimStatefulSet(opts.DefaultTransform)}
			}
			c, err := cache.New(cfg, o)
			if err != nil {
				return nil, fmt.Errorf("cache of %q: %w", sel, err)
			}
			caches = append(caches, c)
		}
		return NewUnion(opts.Scheme, caches[0], caches[1:]...), nil
	}
}

// slimPod keeps of a pod what the webhook reads: its metadata, the EMQX container's name, image,
// environment, ports and mounts (cluster.EMQXContainer: how EMQX is reached and with which
// credentials), the Secret volumes those mounts may name, where it runs and its readiness gates,
// and its phase, addresses and readiness conditions.
func slimPod(next toolscache.TransformFunc) toolscache.TransformFunc {
	return after(next, func(obj any) any {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return obj
		}
		spec := corev1.PodSpec{
			NodeName:           pod.Spec.NodeName,
			Hostname:           pod.Spec.Hostname,
			Subdomain:          pod.Spec.Subdomain,
			ServiceAccountName: pod.Spec.ServiceAccountName,
			ReadinessGates:     pod.Spec.ReadinessGates,
		}
		if c := cluster.EMQXContainer(&pod.Spec); c != nil {
			spec.Containers = []corev1.Container{{Name: c.Name, Image: c.Image, Env: c.Env, EnvFrom: c.EnvFrom,
				Ports: c.Ports, VolumeMounts: c.VolumeMounts}}
		}
		for _, v := range pod.Spec.Volumes {
			if v.Secret != nil {
				spec.Volumes = append(spec.Volumes, corev1.Volume{Name: v.Name,
					VolumeSource: corev1.VolumeSource{Secret: v.Secret}})
			}
		}
		pod.Spec = spec
		pod.Status = corev1.PodStatus{Phase: pod.Status.Phase, Conditions: readiness(pod),
			HostIP: pod.Status.HostIP, PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs,
			StartTime: pod.Status.StartTime}
		return pod
	})
}

// readiness are the pod's conditions the webhook reads: Ready and its readiness gates' (the routing
// gate's own among them), their type and status only.
func readiness(pod *corev1.Pod) []corev1.PodCondition {
	var out []corev1.PodCondition
	for _, c := range pod.Status.Conditions {
		keep := c.Type == corev1.PodReady
		for _, g := range pod.Spec.ReadinessGates {
			keep = keep || c.Type == g.ConditionType
		}
		if keep {
			out = append(out, corev1.PodCondition{Type: c.Type, Status: c.Status})
		}
	}
	return out
}

// slimStatefulSet drops what the webhook never reads of a StatefulSet: its pod template's spec and
// claim templates (the pods carry what it reads), after the default transform.
func slimStatefulSet(next toolscache.TransformFunc) toolscache.TransformFunc {
	return after(next, func(obj any) any {
		if sts, ok := obj.(*appsv1.StatefulSet); ok {
			sts.Spec.Template.Spec = corev1.PodSpec{}
			sts.Spec.VolumeClaimTemplates = nil
		}
		return obj
	})
}

// after is the transform next (the cache's default; nil: none), then slim.
func after(next toolscache.TransformFunc, slim func(any) any) toolscache.TransformFunc {
	return func(obj any) (any, error) {
		if next != nil {
			var err error
			if obj, err = next(obj); err != nil {
				return nil, err
			}
		}
		return slim(obj), nil
	}
}

// Union reads the first cache for every kind, and every cache for the scoped kinds.
type Union struct {
	cache.Cache               // the first alternative, and every kind that is not scoped
	more        []cache.Cache // the other alternatives: pods and ReplicaSets only
	caches      []cache.Cache // the first, then more
	scheme      *runtime.Scheme
}

// NewUnion is a union of caches; the scoped kinds are read from all, the others from the first.
func NewUnion(scheme *runtime.Scheme, first cache.Cache, more ...cache.Cache) *Union {
	return &Union{Cache: first, more: more, caches: append([]cache.Cache{first}, more...), scheme: scheme}
}

func (u *Union) scoped(obj runtime.Object) bool {
	if len(u.more) == 0 {
		return false
	}
	switch obj.(type) {
	case *corev1.Pod, *corev1.PodList, *appsv1.ReplicaSet, *appsv1.ReplicaSetList:
		return true
	}
	return false
}

// Get finds key in the first alternative that holds it.
func (u *Union) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if !u.scoped(obj) {
		return u.Cache.Get(ctx, key, obj, opts...)
	}
	var err error
	for _, c := range u.caches {
		if err = c.Get(ctx, key, obj, opts...); !apierrors.IsNotFound(err) {
			return err
		}
	}
	return err
}

// List merges the alternatives' lists; an object two of them hold is listed once.
func (u *Union) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if !u.scoped(list) {
		return u.Cache.List(ctx, list, opts...)
	}
	seen := map[types.UID]bool{}
	var merged []runtime.Object
	for _, c := range u.caches {
		part, ok := list.DeepCopyObject().(client.ObjectList)
		if !ok {
			return fmt.Errorf("emqxcache: %T is not a list", list)
		}
		if err := c.List(ctx, part, opts...); err != nil {
			return err
		}
		items, err := meta.ExtractList(part)
		if err != nil {
			return fmt.Errorf("emqxcache: %w", err)
		}
		for _, it := range items {
			o, err := meta.Accessor(it)
			if err != nil {
				return fmt.Errorf("emqxcache: %w", err)
			}
			if !seen[o.GetUID()] {
				seen[o.GetUID()] = true
				merged = append(merged, it)
			}
		}
	}
	return meta.SetList(list, merged)
}

// GetInformer is, for a scoped kind, an informer over every alternative's.
func (u *Union) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (
	cache.Informer, error) {
	if !u.scoped(obj) {
		return u.Cache.GetInformer(ctx, obj, opts...)
	}
	var infs []cache.Informer
	for _, c := range u.caches {
		inf, err := c.GetInformer(ctx, obj, opts...)
		if err != nil {
			return nil, err
		}
		infs = append(infs, inf)
	}
	return &informer{infs: infs}, nil
}

// GetInformerForKind is GetInformer by kind.
func (u *Union) GetInformerForKind(ctx context.Context, gvk schema.GroupVersionKind,
	opts ...cache.InformerGetOption) (cache.Informer, error) {
	obj, err := u.scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("emqxcache: %w", err)
	}
	cobj, ok := obj.(client.Object)
	if !ok || !u.scoped(obj) {
		return u.Cache.GetInformerForKind(ctx, gvk, opts...)
	}
	return u.GetInformer(ctx, cobj, opts...)
}

// RemoveInformer removes the kind's informers from every alternative that has them.
func (u *Union) RemoveInformer(ctx context.Context, obj client.Object) error {
	if !u.scoped(obj) {
		return u.Cache.RemoveInformer(ctx, obj)
	}
	for _, c := range u.caches {
		if err := c.RemoveInformer(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}

// Start runs every alternative until ctx ends or one fails.
func (u *Union) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(u.caches))
	for _, c := range u.caches {
		go func() { errs <- c.Start(ctx) }()
	}
	var first error
	for range u.caches {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// WaitForCacheSync reports whether every alternative has synced.
func (u *Union) WaitForCacheSync(ctx context.Context) bool {
	for _, c := range u.caches {
		if !c.WaitForCacheSync(ctx) {
			return false
		}
	}
	return true
}

// IndexField indexes the field in every alternative that holds the kind.
func (u *Union) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	if !u.scoped(obj) {
		return u.Cache.IndexField(ctx, obj, field, extract)
	}
	for _, c := range u.caches {
		if err := c.IndexField(ctx, obj, field, extract); err != nil {
			return err
		}
	}
	return nil
}
