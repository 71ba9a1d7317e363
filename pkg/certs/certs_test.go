package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

const validity = 365 * 24 * time.Hour

type world struct {
	t     *testing.T
	kube  *fake.Clientset
	clock *clocktesting.FakeClock
}

func newWorld(t *testing.T) *world {
	url := "https://127.0.0.1:9443/evict"
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "emqx-webhook"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{Name: "a.example", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url}},
		}}
	return &world{
		t:     t,
		kube:  fake.NewClientset(cfg),
		clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
}

// replica is one webhook replica's rotator, with a certificate directory of its own.
func (w *world) replica() *Rotator {
	return &Rotator{
		Kube:               w.kube,
		Namespace:          "emqx-webhook",
		SecretName:         "emqx-webhook-tls",
		DNSNames:           []string{"emqx-webhook.emqx-webhook.svc"},
		CertDir:            w.t.TempDir(),
		ValidatingWebhooks: []string{"emqx-webhook"},
		Validity:           validity,
		RenewBefore:        30 * 24 * time.Hour,
		Clock:              w.clock,
		Log:                logr.Discard(),
	}
}

func (w *world) ensure(r *Rotator) {
	w.t.Helper()
	if err := r.Ensure(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) caBundle() []byte {
	w.t.Helper()
	cfg, err := w.kube.AdmissionregistrationV1().
		ValidatingWebhookConfigurations().
		Get(context.Background(), "emqx-webhook", metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return cfg.Webhooks[0].ClientConfig.CABundle
}

// served is the certificate a replica serves, as its webhook server reads it from its directory.
func served(t *testing.T, r *Rotator) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(r.CertDir, KeyCert), filepath.Join(r.CertDir, KeyKey))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// trusted: the API server, holding caBundle, accepts what the replica serves.
func (w *world) trusted(r *Rotator) bool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.caBundle())
	_, err := served(
		w.t,
		r,
	).Verify(x509.VerifyOptions{Roots: pool, CurrentTime: w.clock.Now(), DNSName: "emqx-webhook.emqx-webhook.svc"})
	return err == nil
}

// Renewing the serving certificate keeps the CA: the caBundle does not change, so a replica that
// has not reloaded yet is still trusted. Two replicas share the renewal.
func TestServingRenewalKeepsTheCAAndBothReplicasStayTrusted(t *testing.T) {
	w := newWorld(t)
	a, b := w.replica(), w.replica()
	w.ensure(a)
	w.ensure(b)
	bundle, first := w.caBundle(), served(t, a)
	if !served(t, b).Equal(first) || !w.trusted(a) || !w.trusted(b) {
		t.Fatal("replicas do not share one trusted certificate")
	}
	w.clock.Step(validity - 29*24*time.Hour) // inside RenewBefore
	w.ensure(a)                              // a renews; b has not reloaded yet
	if served(t, a).Equal(first) {
		t.Fatal("the serving certificate was not renewed")
	}
	if !bytes.Equal(w.caBundle(), bundle) {
		t.Fatal("a serving renewal replaced the caBundle")
	}
	if !w.trusted(a) || !w.trusted(b) {
		t.Fatalf("trusted: a %v, b %v (b still serves the old certificate)", w.trusted(a), w.trusted(b))
	}
	w.ensure(b) // as the watch of the Secret makes it do at once
	if !served(t, b).Equal(served(t, a)) {
		t.Fatal("b did not take a's renewal")
	}
}

// A CA near its end is replaced, and both CAs are published until the old one expires: nothing
// signed by either stops being trusted in between.
func TestCARolloverPublishesOldAndNewCATogether(t *testing.T) {
	w := newWorld(t)
	a, b := w.replica(), w.replica()
	w.ensure(a)
	w.ensure(b)
	oldCA := certsIn(w.caBundle())[0]
	w.clock.Step(8*validity + time.Hour) // the CA (10 × validity) has less than 2 × validity left
	w.ensure(a)
	cas := certsIn(w.caBundle())
	if len(cas) != 2 || cas[0].Equal(oldCA) || !cas[1].Equal(oldCA) {
		t.Fatalf("bundle during the rollover: %d CAs, want the new one and the old one", len(cas))
	}
	if !w.trusted(a) {
		t.Fatal("the new serving certificate is not trusted")
	}
	w.clock.Step(2 * validity)
	w.ensure(a)
	if cas := certsIn(w.caBundle()); len(cas) != 1 {
		t.Fatalf("the expired CA is still published: %d CAs", len(cas))
	}
}

// A caBundle wiped by someone is put back at once, not at the next hourly check.
func TestWipedCABundleIsRepairedAtOnce(t *testing.T) {
	w := newWorld(t)
	r := w.replica()
	w.ensure(r)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = r.Start(ctx); close(done) }()
	cfg, _ := w.kube.AdmissionregistrationV1().
		ValidatingWebhookConfigurations().
		Get(ctx, "emqx-webhook", metav1.GetOptions{})
	// The watches start asynchronously: wipe until the repair is seen, within a bound.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cfg.Webhooks[0].ClientConfig.CABundle = nil
		if _, err := w.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, cfg,
			metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		repaired := false
		for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
			if len(w.caBundle()) > 0 {
				repaired = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if repaired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the wiped caBundle was not repaired")
		}
		cfg, _ = w.kube.AdmissionregistrationV1().
			ValidatingWebhookConfigurations().
			Get(ctx, "emqx-webhook", metav1.GetOptions{})
	}
	cancel()
	<-done
}

// The key pair lands in the certificate directory for the webhook server, readable by it only.
func TestCertificateFilesAreWrittenPrivately(t *testing.T) {
	w := newWorld(t)
	r := w.replica()
	w.ensure(r)
	for _, k := range []string{KeyCert, KeyKey} {
		st, err := os.Stat(filepath.Join(r.CertDir, k))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", k, st, err)
		}
	}
}

// The custom metrics APIService trusts the same CA: its caBundle is set, kept, and restored when
// a re-applied manifest blanks it; a missing APIService is not an error.
func TestAPIServiceCABundleIsInjected(t *testing.T) {
	w := newWorld(t)
	svc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": "v1beta2.custom.metrics.k8s.io"},
		"spec":     map[string]any{"group": "custom.metrics.k8s.io", "version": "v1beta2"},
	}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{APIServiceResource: "APIServiceList"}, svc)
	r := w.replica()
	r.Dynamic = dyn
	r.APIServices = []string{"v1beta2.custom.metrics.k8s.io", "absent.example.com"}
	w.ensure(r)
	bundle := func() string {
		got, err := dyn.Resource(APIServiceResource).
			Get(context.Background(), "v1beta2.custom.metrics.k8s.io", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, _, _ := unstructured.NestedString(got.Object, "spec", "caBundle")
		return s
	}
	want := base64.StdEncoding.EncodeToString(w.caBundle())
	if bundle() != want {
		t.Fatalf("APIService caBundle %q, want the webhook's CA", bundle())
	}
	blank := svc.DeepCopy()
	_ = unstructured.SetNestedField(blank.Object, "", "spec", "caBundle")
	if _, err := dyn.Resource(APIServiceResource).Update(context.Background(), blank,
		metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.ensure(r)
	if bundle() != want {
		t.Fatal("a blanked APIService caBundle was not restored")
	}
}

// The self-signed CA signs serving certificates only: its path length is pinned at zero, so a
// stolen serving key cannot be used to mint another CA under it.
func TestCAMaySignNoOtherCA(t *testing.T) {
	w := newWorld(t)
	w.ensure(w.replica())
	block, _ := pem.Decode(w.caBundle())
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Fatalf("CA path length: IsCA %v, MaxPathLen %d, MaxPathLenZero %v", ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero)
	}
}
