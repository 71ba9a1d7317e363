package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/kubectl/pkg/drain"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/internal/webhooktest"
)

func raw(v any) runtime.RawExtension {
	b, _ := json.Marshal(v)
	return runtime.RawExtension{Raw: b}
}

func evictionRequest(body string, namespace string, dry bool) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: admissionv1.Create, Namespace: namespace, Name: "emqx-0", SubResource: "eviction",
		Resource: metav1.GroupVersionResource{
			Version:  "v1",
			Resource: "pods",
		}, Object: runtime.RawExtension{Raw: []byte(body)}, DryRun: &dry,
	}}
}

func TestEvictionHandlerDecodesBothVersionsAndMissingNamespace(t *testing.T) {
	for _, body := range []string{
		`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"emqx-0","namespace":"mqtt"}}`,
		`{"apiVersion":"policy/v1beta1","kind":"Eviction","metadata":{"name":"emqx-0"}}`, // no namespace in the body
	} {
		f := newFixture(t, 100, 100)
		h := &EvictionHandler{Gate: f.gate, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
		resp := h.Handle(context.Background(), evictionRequest(body, ns, false))
		if resp.Allowed || resp.Result.Code != http.StatusTooManyRequests || resp.Result.Details != nil {
			t.Fatalf("%s: %+v", body, resp.Result)
		}
		if f.Evacuation(0) == "" {
			t.Fatalf("%s: no evacuation started", body)
		}
	}
}

func TestEvictionUIDPreconditionMismatchStartsNothing(t *testing.T) {
	f := newFixture(t, 100, 100)
	h := &EvictionHandler{Gate: f.gate, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	const eviction = `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"emqx-0"},`
	body := eviction + `"deleteOptions":{"preconditions":{"uid":"another-pod"}}}`
	if resp := h.Handle(context.Background(), evictionRequest(body, ns, false)); !resp.Allowed ||
		f.Evacuation(0) != "" {
		t.Fatalf("%+v, evacuation %q", resp, f.Evacuation(0))
	}
	body = eviction + `"deleteOptions":{"preconditions":{"uid":"uid-0"}}}`
	if resp := h.Handle(context.Background(), evictionRequest(body, ns, false)); resp.Allowed {
		t.Fatal("a matching UID precondition must be held like any eviction")
	}
}

func TestEvictionDryRunInDeleteOptions(t *testing.T) {
	f := newFixture(t, 100, 100)
	h := &EvictionHandler{Gate: f.gate, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	body := `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"emqx-0"},` +
		`"deleteOptions":{"dryRun":["All"]}}`
	resp := h.Handle(context.Background(), evictionRequest(body, ns, false))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "dry run") || f.Evacuation(0) != "" {
		t.Fatalf("%+v", resp.Result)
	}
}

func TestMalformedAdmissionBodiesAreErrored(t *testing.T) {
	f := newFixture(t, 100, 100)
	dec := admission.NewDecoder(scheme.Scheme)
	ev := &EvictionHandler{Gate: f.gate, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	del := &PodDeleteHandler{Gate: f.gate, Decoder: dec, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	sc := &ScaleHandler{Gate: f.gate, Reader: f.Kube, Decoder: dec}
	cases := map[string]admission.Response{
		"eviction garbage": ev.Handle(context.Background(), evictionRequest(`{"metadata":`, ns, false)),
		"eviction no name": ev.Handle(
			context.Background(),
			admission.Request{
				AdmissionRequest: admissionv1.AdmissionRequest{
					Operation: admissionv1.Create,
					Object:    runtime.RawExtension{Raw: []byte(`{}`)},
				},
			},
		),
		"delete garbage": del.Handle(
			context.Background(),
			admission.Request{
				AdmissionRequest: admissionv1.AdmissionRequest{
					Operation: admissionv1.Delete,
					OldObject: runtime.RawExtension{Raw: []byte(`[`)},
				},
			},
		),
		"delete bad options": del.Handle(
			context.Background(),
			admission.Request{
				AdmissionRequest: admissionv1.AdmissionRequest{
					Operation: admissionv1.Delete,
					OldObject: raw(f.Pod(0)),
					Options:   runtime.RawExtension{Raw: []byte(`{"dryRun":7}`)},
				},
			},
		),
		"scale garbage": sc.Handle(
			context.Background(),
			admission.Request{
				AdmissionRequest: admissionv1.AdmissionRequest{
					Operation:   admissionv1.Update,
					SubResource: "scale",
					OldObject:   runtime.RawExtension{Raw: []byte(`{"spec":{"replicas":"x"}}`)},
					Object:      raw(map[string]any{}),
				},
			},
		),
	}
	for name, resp := range cases {
		if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest ||
			resp.Result.Message == "" {
			t.Errorf("%s: %+v", name, resp.AdmissionResponse)
		}
	}
	if f.Evacuation(0) != "" {
		t.Fatal("a malformed request started an evacuation")
	}
}

func TestPodDeleteHandler(t *testing.T) {
	f := newFixture(t, 100, 100)
	h := &PodDeleteHandler{Gate: f.gate, Decoder: admission.NewDecoder(scheme.Scheme), Reader: f.Kube,
		Uncached: Uncached{Live: f.Kube}}
	req := func(pod *corev1.Pod, opts string) admission.Request {
		r := admission.Request{
			AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Delete, Namespace: ns, Name: pod.Name,
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, OldObject: raw(pod)},
		}
		if opts != "" {
			r.Options = runtime.RawExtension{Raw: []byte(opts)}
		}
		return r
	}
	if resp := h.Handle(context.Background(), req(f.Pod(0), `{"dryRun":["All"]}`)); resp.Allowed ||
		f.Evacuation(0) != "" {
		t.Fatalf("dry run: %+v", resp.Result)
	}
	if resp := h.Handle(context.Background(), req(f.Pod(0), "")); resp.Allowed || resp.Result.Code != 429 {
		t.Fatalf("delete: %+v", resp.Result)
	}
	// The final grace-0 delete of a pod already terminating always passes.
	p := f.Pod(0)
	p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	if resp := h.Handle(context.Background(), req(p, `{"gracePeriodSeconds":0}`)); !resp.Allowed {
		t.Fatalf("grace-0 delete of a terminating pod: %+v", resp.Result)
	}
}

func TestScaleHandler(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	h := &ScaleHandler{Gate: f.gate, Reader: f.Kube, Decoder: admission.NewDecoder(scheme.Scheme)}
	scale := func(old, new int32) admission.Request {
		return admission.Request{
			AdmissionRequest: admissionv1.AdmissionRequest{
				Operation:   admissionv1.Update,
				Namespace:   ns,
				Name:        "emqx",
				SubResource: "scale",
				Kind:        metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"},
				OldObject: raw(
					map[string]any{"spec": map[string]any{"replicas": old}},
				),
				Object: raw(map[string]any{"spec": map[string]any{"replicas": new}}),
			},
		}
	}
	if resp := h.Handle(context.Background(), scale(3, 4)); !resp.Allowed || len(resp.Warnings) != 0 {
		t.Fatalf("scale-up: %+v", resp)
	}
	// A review whose old replicas are not the StatefulSet's (forged, or stale) starts nothing.
	if resp := h.Handle(context.Background(), scale(2147483647, 1)); !answersNothing(resp) ||
		f.Evacuation(1) != "" || f.Evacuation(2) != "" {
		t.Fatalf("forged scale: %+v", resp)
	}
	resp := h.Handle(context.Background(), scale(3, 2))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "emqx-2") ||
		f.Evacuation(2) == "" {
		t.Fatalf("scale-down: %+v", resp)
	}
	// kubectl apply/patch on the StatefulSet itself.
	old, upd := f.Sts.DeepCopy(), f.Sts.DeepCopy()
	upd.Spec.Replicas = ptr.To(int32(1))
	req := admission.Request{
		AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Update, Namespace: ns, Name: "emqx",
			Kind: metav1.GroupVersionKind{
				Group:   "apps",
				Version: "v1",
				Kind:    "StatefulSet",
			}, OldObject: raw(old), Object: raw(upd)},
	}
	f.gate.Config.MaxConcurrent = 3
	if resp := h.Handle(context.Background(), req); !resp.Allowed || f.Evacuation(1) == "" {
		t.Fatalf("statefulset update: %+v", resp)
	}
	// Not EMQX: ignored.
	web := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{"app": "web"}},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To(int32(3))},
	}
	web2 := web.DeepCopy()
	web2.Spec.Replicas = ptr.To(int32(0))
	req.OldObject, req.Object = raw(web), raw(web2)
	if resp := h.Handle(context.Background(), req); !resp.Allowed || len(resp.Warnings) != 0 {
		t.Fatalf("non-EMQX statefulset: %+v", resp)
	}
}

// The real kubectl drain helper, evicting through the handler: it retries on 429 and completes
// once the node is empty, with nothing lost.
func TestKubectlDrainHelperRetriesUntilEvacuated(t *testing.T) {
	f := newFixture(t, 300, 300)
	pod := f.Pod(0)
	pod.Spec.NodeName = "kwok-node-0"
	cs := fake.NewClientset(pod, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "kwok-node-0"}})
	cs.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"}}}}
	h := &EvictionHandler{Gate: f.gate, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	held := 0
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca, ok := a.(k8stesting.CreateAction)
		if !ok || ca.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := ca.GetObject().(*policyv1.Eviction)
		resp := h.Handle(context.Background(), evictionRequest(string(raw(ev).Raw), ev.Namespace, false))
		if !resp.Allowed {
			held++
			f.Sim.Advance(2 * time.Second) // time passes between retries
			return true, nil, &apierrors.StatusError{ErrStatus: *resp.Result}
		}
		_ = f.Sim.RemoveNode(node(0)) // the pod goes, and its node with it
		return true, nil, cs.Tracker().
			Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, ev.Namespace, ev.Name)
	})
	var out, errOut bytes.Buffer
	helper := &drain.Helper{
		Ctx:                  context.Background(),
		Client:               cs,
		Out:                  &out,
		ErrOut:               &errOut,
		GracePeriodSeconds:   -1,
		Timeout:              time.Minute,
		EvictErrorRetryDelay: time.Millisecond,
		IgnoreAllDaemonSets:  true,
		DeleteEmptyDirData:   true,
	}
	if err := drain.RunNodeDrain(helper, "kwok-node-0"); err != nil {
		t.Fatalf("drain: %v\n%s", err, errOut.String())
	}
	if held == 0 || !strings.Contains(errOut.String(), "will retry after") ||
		!strings.Contains(errOut.String(), "retrying is safe") {
		t.Fatalf("drain was never held: %s", errOut.String())
	}
	if s := f.Sim.Snapshot(); s.LostSessions != 0 || s.ConnectedClients+s.ReconnectingClients != 600 {
		t.Fatalf("lost %d, clients %d", s.LostSessions, s.ConnectedClients)
	}
}

func FuzzAdmissionHandlers(fz *testing.F) {
	fz.Add([]byte(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"emqx-0"}}`), []byte(`{}`), "")
	fz.Add([]byte(`{"spec":{"replicas":1}}`), []byte(`{"spec":{"replicas":3}}`), "scale")
	fz.Add([]byte(`{"metadata":{"name":"emqx-0","labels":{"app.kubernetes.io/name":"emqx"}}}`), []byte(`null`), "")
	fz.Add([]byte(`[`), []byte(`"`), "scale")
	f := newFixture(fz, 0, 0)
	dec := admission.NewDecoder(scheme.Scheme)
	handlers := []admission.Handler{
		&EvictionHandler{Gate: f.gate, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}},
		&PodDeleteHandler{Gate: f.gate, Decoder: dec, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}},
		&ScaleHandler{Gate: f.gate, Reader: f.Kube, Decoder: dec},
	}
	fz.Fuzz(func(t *testing.T, obj, old []byte, sub string) {
		for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Delete, admissionv1.Update} {
			req := admission.Request{
				AdmissionRequest: admissionv1.AdmissionRequest{
					Operation:   op,
					Namespace:   ns,
					Name:        "emqx-0",
					SubResource: sub,
					Object: runtime.RawExtension{
						Raw: obj,
					},
					OldObject: runtime.RawExtension{Raw: old},
					Options:   runtime.RawExtension{Raw: old},
				},
			}
			for _, h := range handlers {
				resp := h.Handle(context.Background(), req)
				if !resp.Allowed && (resp.Result == nil || resp.Result.Message == "") {
					t.Fatalf("a refusal without a message: %+v", resp)
				}
			}
		}
	})
}

// A pod the webhook cannot read is held, then allowed after the grace period with a Warning Event:
// never a silent allow.
func TestEvictionOfAPodTheCacheCannotReadIsHeldThenAllowedWithAnEvent(t *testing.T) {
	f := newFixture(t, 100)
	broken := interceptor.NewClient(f.Kube.(client.WithWatch), interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errors.New("the informer cache is not synced")
		},
	})
	h := &EvictionHandler{Gate: f.gate, Reader: broken, Uncached: Uncached{Live: f.Kube}}
	req := evictionRequest(
		`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"emqx-0","namespace":"mqtt"}}`,
		ns,
		false,
	)
	if resp := h.Handle(context.Background(), req); resp.Allowed || resp.Result.Code != 429 ||
		!strings.Contains(resp.Result.Message, "could not read pod mqtt/emqx-0") {
		t.Fatalf("response %+v", resp.Result)
	}
	f.Clock.Step(f.gate.Config.UnreachableGrace)
	if resp := h.Handle(context.Background(), req); !resp.Allowed {
		t.Fatalf("still held after the grace period: %+v", resp.Result)
	}
	if ev := f.Events(); !strings.Contains(ev, "Warning EMQXUnreachable the webhook could not read pod mqtt/emqx-0") {
		t.Fatalf("events %q", ev)
	}
	// A pod the synced cache does not know: the API server answers.
	h.Reader = f.Kube
	req = evictionRequest(
		`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"nope","namespace":"mqtt"}}`,
		ns,
		false,
	)
	if resp := h.Handle(context.Background(), req); !answersNothing(resp) {
		t.Fatalf("unknown pod: %+v", resp.Result)
	}
}

// Anyone who reaches the webhook can send it an AdmissionReview. A forged one starts nothing: the
// pod deleted must be the live pod of that name, and a StatefulSet update must match the
// StatefulSet as it is.
func TestForgedReviewsStartNothing(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	dec := admission.NewDecoder(scheme.Scheme)
	del := &PodDeleteHandler{Gate: f.gate, Decoder: dec, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	forged := f.Pod(0).DeepCopy()
	forged.UID = "not-the-live-one"
	r := admission.Request{
		AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Delete, Namespace: ns, Name: forged.Name,
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, OldObject: raw(forged)},
	}
	if resp := del.Handle(context.Background(), r); !resp.Allowed || f.Evacuation(0) != "" {
		t.Fatalf("forged pod delete: %+v, evacuation %q", resp.Result, f.Evacuation(0))
	}
	ghost := forged.DeepCopy()
	ghost.Name = "emqx-9"
	r.OldObject, r.Name = raw(ghost), ghost.Name
	if resp := del.Handle(context.Background(), r); !resp.Allowed {
		t.Fatalf("delete of a pod that does not exist: %+v", resp.Result)
	}
	scale := &ScaleHandler{Gate: f.gate, Reader: f.Kube, Decoder: dec}
	old, upd := f.Sts.DeepCopy(), f.Sts.DeepCopy()
	old.Spec.Replicas, upd.Spec.Replicas = ptr.To(int32(5)), ptr.To(int32(1))
	req := admission.Request{
		AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Update, Namespace: ns, Name: "emqx",
			Kind: metav1.GroupVersionKind{
				Group:   "apps",
				Version: "v1",
				Kind:    "StatefulSet",
			}, OldObject: raw(old), Object: raw(upd)},
	}
	if resp := scale.Handle(context.Background(), req); !answersNothing(resp) ||
		f.Evacuation(1) != "" || f.Evacuation(2) != "" {
		t.Fatalf("forged statefulset update: %+v", resp.Result)
	}
}

// answersNothing: the answer to a review that names nothing of EMQX's as it is (not EMQX's, not
// there, or not as the review says): allowed, no message, no warning, the same in every case.
func answersNothing(resp admission.Response) bool {
	return resp.Allowed && (resp.Result == nil || resp.Result.Message == "") && len(resp.Warnings) == 0
}

// A caller whose review does not match live state learns nothing from the answer: a scale with a
// wrong replica count, of a StatefulSet that is not there or is not EMQX's, an eviction of a pod
// that does not exist, of one that is not EMQX's, a deletion naming the wrong UID: all answered
// alike, none naming a count, a node or whether the object exists.
func TestAnswersToUnmatchedReviewsLeakNothing(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	ctx := context.Background()
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns, UID: "web-uid"}}
	web := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, UID: "web-sts"},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To(int32(3))},
	}
	for _, o := range []client.Object{plain, web} {
		if err := f.Kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	dec := admission.NewDecoder(scheme.Scheme)
	scale := &ScaleHandler{Gate: f.gate, Reader: f.Kube, Decoder: dec}
	evict := &EvictionHandler{Gate: f.gate, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	del := &PodDeleteHandler{Gate: f.gate, Decoder: dec, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	scaleOf := func(name string, old, new int32) admission.Request {
		return admission.Request{
			AdmissionRequest: admissionv1.AdmissionRequest{
				Operation:   admissionv1.Update,
				Namespace:   ns,
				Name:        name,
				SubResource: "scale",
				Kind:        metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"},
				OldObject: raw(
					map[string]any{"spec": map[string]any{"replicas": old}},
				),
				Object: raw(map[string]any{"spec": map[string]any{"replicas": new}}),
			},
		}
	}
	eviction := func(name, uid string) admission.Request {
		body := `{"apiVersion":"policy/v1","kind":"Eviction",` +
			`"metadata":{"name":"` + name + `","namespace":"` + ns + `"}`
		if uid != "" {
			body += `,"deleteOptions":{"preconditions":{"uid":"` + uid + `"}}`
		}
		return evictionRequest(body+"}", ns, false)
	}
	wrongUID := f.Pod(1).DeepCopy()
	wrongUID.UID = "forged"
	for name, resp := range map[string]admission.Response{
		"a scale with a wrong replica count":           scale.Handle(ctx, scaleOf("emqx", 7, 1)),
		"a scale of a StatefulSet that does not exist": scale.Handle(ctx, scaleOf("nope", 7, 1)),
		"a scale of a StatefulSet not EMQX's":          scale.Handle(ctx, scaleOf("web", 3, 1)),
		"an eviction of a pod that does not exist":     evict.Handle(ctx, eviction("nope", "")),
		"an eviction of a pod not EMQX's":              evict.Handle(ctx, eviction("web-0", "")),
		"an eviction naming another UID":               evict.Handle(ctx, eviction("emqx-1", "forged")),
		"a deletion of the pod with another UID": del.Handle(ctx,
			admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				Operation: admissionv1.Delete,
				Namespace: ns,
				Name:      "emqx-1",
				OldObject: raw(wrongUID),
			}}),
	} {
		if !answersNothing(resp) {
			t.Errorf("%s: %+v %v", name, resp.Result, resp.Warnings)
		}
	}
	for i := range 3 {
		if f.Evacuation(i) != "" {
			t.Fatalf("emqx-%d evacuates", i)
		}
	}
}

// A held removal is answered 429 TooManyRequests, so drainers retry, and says retrying is safe.
func TestAHeldRemovalIsTooManyRequests(t *testing.T) {
	f := newFixture(t, 100, 100)
	resp := response(f.removal(0))
	if resp.Allowed || resp.Result.Code != http.StatusTooManyRequests ||
		resp.Result.Reason != metav1.StatusReasonTooManyRequests ||
		!strings.Contains(resp.Result.Message, "retrying is safe") {
		t.Fatalf("response %+v", resp.Result)
	}
}

// The cache holds EMQX's pods only; the eviction of a pod it lacks whose name an EMQX StatefulSet or
// ReplicaSet the cache holds could have given is asked of the API server (metadata only): one
// labelled EMQX's a moment ago is held until the cache has it, one that is not EMQX's goes. Other
// names go unread, and outside the watched namespaces nothing is asked.
func TestRemovalOfAPodTheCacheDoesNotHoldIsAskedOfTheAPIServer(t *testing.T) {
	f := newFixture(t, 100, 100)
	ctx := context.Background()
	var asked []string
	live := interceptor.NewClient(f.Kube.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, o client.Object,
			opts ...client.GetOption) error {
			if _, ok := o.(*metav1.PartialObjectMetadata); !ok {
				t.Errorf("the API server is asked for %T, not metadata only", o)
			}
			asked = append(asked, k.Name)
			return c.Get(ctx, k, o, opts...)
		},
	})
	noPods := emptyCache(f)
	h := &EvictionHandler{Gate: f.gate, Reader: noPods, Uncached: Uncached{Live: live}}
	evict := func(name string) admission.Response {
		return h.Handle(ctx, evictionRequest(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"`+
			name+`","namespace":"mqtt"}}`, ns, false))
	}
	// An EMQX pod the cache has not seen yet: held, nothing started.
	if resp := evict("emqx-0"); resp.Allowed || resp.Result.Code != http.StatusTooManyRequests ||
		!strings.Contains(resp.Result.Message, "has not seen it yet") || f.Evacuation(0) != "" {
		t.Fatalf("EMQX pod not yet cached: %+v, evacuation %q", resp.Result, f.Evacuation(0))
	}
	// A pod that is not EMQX's, and one that does not exist: allowed alike.
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web",
		Labels: map[string]string{"app": "web"}}}
	if err := f.Kube.Create(ctx, web); err != nil {
		t.Fatal(err)
	}
	if resp := evict("web"); !answersNothing(resp) {
		t.Fatalf("ordinary pod: %+v", resp.Result)
	}
	if resp := evict("emqx-7"); !answersNothing(resp) {
		t.Fatalf("no such pod: %+v", resp.Result)
	}
	// Names no EMQX workload the cache holds gives: another StatefulSet's, a Deployment's, a
	// ReplicaSet's the cache does not hold (not EMQX's). A pod of an EMQX ReplicaSet is asked.
	redis := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis",
		Labels: map[string]string{"app": "redis"}}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "emqx-replicant-7c9f6d5b4",
		Labels: webhooktest.Labels()}}
	for _, o := range []client.Object{redis, rs} {
		if err := f.Kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"redis-0", "web-7c9f6d5b4-x2x4q", "emqx-x2x4q", "emqx-replicant-7c9f6d5b4-x2x4q"} {
		if resp := evict(name); !answersNothing(resp) {
			t.Fatalf("%s: %+v", name, resp.Result)
		}
	}
	if strings.Join(asked, ",") != "emqx-0,emqx-7,emqx-replicant-7c9f6d5b4-x2x4q" {
		t.Fatalf("asked the API server about %v", asked)
	}
	// The API server does not answer: held like a pod the cache cannot read.
	h.Uncached.Live = interceptor.NewClient(f.Kube.(client.WithWatch), interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errors.New("etcdserver: request timed out")
		},
	})
	if resp := evict("emqx-7"); resp.Allowed ||
		!strings.Contains(resp.Result.Message, "could not read pod mqtt/emqx-7") {
		t.Fatalf("unreadable: %+v", resp.Result)
	}
	// Outside the watched namespaces: not the webhook's, nothing asked.
	h.Uncached = Uncached{Live: live, Watched: []string{"other"}}
	asked = nil
	if resp := evict("emqx-0"); !answersNothing(resp) || len(asked) != 0 {
		t.Fatalf("unwatched namespace: %+v, asked %v", resp.Result, asked)
	}
	// A deletion of an EMQX pod the cache has not seen yet is held the same way.
	del := &PodDeleteHandler{Gate: f.gate, Decoder: admission.NewDecoder(scheme.Scheme), Reader: noPods,
		Uncached: Uncached{Live: live}}
	resp := del.Handle(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Delete, Namespace: ns, Name: "emqx-1",
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, OldObject: raw(f.Pod(1))}})
	if resp.Allowed || !strings.Contains(resp.Result.Message, "has not seen it yet") || f.Evacuation(1) != "" {
		t.Fatalf("deletion of an EMQX pod not yet cached: %+v", resp.Result)
	}
}

// emptyCache is a cache that holds no pod (the webhook's for a pod that is not EMQX's), and the
// world's other objects.
func emptyCache(f *fixture) client.Reader {
	return interceptor.NewClient(f.Kube.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, o client.Object,
			opts ...client.GetOption) error {
			if _, ok := o.(*corev1.Pod); ok {
				return apierrors.NewNotFound(corev1.Resource("pods"), k.Name)
			}
			return c.Get(ctx, k, o, opts...)
		},
	})
}
