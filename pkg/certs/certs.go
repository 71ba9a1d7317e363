package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Secret keys. ca.crt is the bundle the webhook configurations trust: the current CA, and during
// a CA rollover the previous one too.
const (
	KeyCACert = "ca.crt"
	KeyCAKey  = "ca.key"
	KeyCert   = "tls.crt"
	KeyKey    = "tls.key"
)

// webhookClients are the client configurations of one webhook configuration's webhooks.
type webhookClients = []admissionregistrationv1.WebhookClientConfig

// Rotator keeps the serving certificate valid. The CA outlives many serving certificates: a
// renewal of the serving certificate keeps the CA, so the caBundle does not change and a replica
// that has not reloaded yet is still trusted. When the CA itself nears its end, a new CA is made
// and both are published until the old one has expired.
type Rotator struct {
	Kube       kubernetes.Interface
	Namespace  string
	SecretName string
	DNSNames   []string
	IPs        []net.IP
	CertDir    string
	// ValidatingWebhooks are ValidatingWebhookConfiguration names whose caBundle is kept current.
	ValidatingWebhooks []string
	// MutatingWebhooks are MutatingWebhookConfiguration names whose caBundle is kept current.
	MutatingWebhooks []string
	// APIServices are APIService names (the custom metrics API) whose caBundle is kept current,
	// through Dynamic.
	APIServices []string
	Dynamic     dynamic.Interface
	Validity    time.Duration // of the serving certificate; the CA lives 10 times longer
	RenewBefore time.Duration // renew when fewer than this is left
	Clock       clock.WithTicker
	Log         logr.Logger
}

// caRenewBefore: a CA is replaced when less than this is left of it, long before any serving
// certificate it signed can outlive it.
func (r *Rotator) caRenewBefore() time.Duration { return 2 * r.Validity }

// Ensure makes sure the Secret holds a valid CA and serving certificate for the names, writes the
// certificate to CertDir and injects the CA bundle. It is safe to run from every replica at once:
// the Secret's resourceVersion settles races, and losers use the winner's certificate.
func (r *Rotator) Ensure(ctx context.Context) error {
	for attempt := 0; attempt < 3; attempt++ {
		sec, err := r.Kube.CoreV1().Secrets(r.Namespace).Get(ctx, r.SecretName, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("read Secret %s/%s: %w", r.Namespace, r.SecretName, err)
		}
		var old map[string][]byte
		if err == nil {
			old = sec.Data
		}
		data, changed, what, gerr := r.next(old)
		if gerr != nil {
			return gerr
		}
		if !changed {
			return r.install(ctx, data)
		}
		if apierrors.IsNotFound(err) {
			sec = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: r.SecretName, Namespace: r.Namespace},
				Type:       corev1.SecretTypeTLS,
				Data:       data,
			}
			_, err = r.Kube.CoreV1().Secrets(r.Namespace).Create(ctx, sec, metav1.CreateOptions{})
		} else {
			sec.Data = data
			_, err = r.Kube.CoreV1().Secrets(r.Namespace).Update(ctx, sec, metav1.UpdateOptions{})
		}
		if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
			continue // another replica won: use its certificate
		}
		if err != nil {
			return fmt.Errorf("store the webhook certificate in Secret %s/%s: %w", r.Namespace, r.SecretName, err)
		}
		r.Log.Info(
			"webhook certificate renewed",
			"what",
			what,
			"secret",
			r.Namespace+"/"+r.SecretName,
			"dnsNames",
			r.DNSNames,
			"ips",
			r.IPs,
		)
		return r.install(ctx, data)
	}
	return fmt.Errorf("the webhook certificate Secret %s/%s keeps changing under us", r.Namespace, r.SecretName)
}

// next is the decision, apart from its side effects: from the Secret's data (nil when there is
// none), the data it should hold, whether that differs, and what was renewed.
func (r *Rotator) next(data map[string][]byte) (map[string][]byte, bool, string, error) {
	now := r.Clock.Now()
	ca, caKey, caOK := r.currentCA(data)
	bundle := certsIn(data[KeyCACert])
	var what []string
	if !caOK {
		var err error
		if ca, caKey, err = r.newCA(); err != nil {
			return nil, false, "", err
		}
		what = append(what, "CA")
	}
	// The bundle: the current CA first, then every other CA still valid (the previous one, while a
	// serving certificate it signed may still be in use).
	kept := []*x509.Certificate{ca}
	for _, c := range bundle {
		if !c.Equal(ca) && now.Before(c.NotAfter) {
			kept = append(kept, c)
		}
	}
	out := map[string][]byte{
		KeyCACert: encodeCerts(kept),
		KeyCAKey:  encodeKey(caKey),
		KeyCert:   data[KeyCert],
		KeyKey:    data[KeyKey],
	}
	if !r.leafValid(data, ca) {
		cert, key, err := r.newLeaf(ca, caKey)
		if err != nil {
			return nil, false, "", err
		}
		out[KeyCert], out[KeyKey] = cert, key
		what = append(what, "serving certificate")
	}
	changed := data == nil
	for _, k := range []string{KeyCACert, KeyCAKey, KeyCert, KeyKey} {
		changed = changed || !bytes.Equal(out[k], data[k])
	}
	return out, changed, strings.Join(what, " and "), nil
}

// currentCA is the Secret's CA with its key, when both parse, belong together and the CA is not
// due for replacement.
func (r *Rotator) currentCA(data map[string][]byte) (*x509.Certificate, *ecdsa.PrivateKey, bool) {
	bundle := certsIn(data[KeyCACert])
	block, _ := pem.Decode(data[KeyCAKey])
	if len(bundle) == 0 || block == nil {
		return nil, nil, false
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, false
	}
	ca := bundle[0]
	pub, ok := ca.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) || !ca.IsCA || r.Clock.Now().Add(r.caRenewBefore()).After(ca.NotAfter) {
		return nil, nil, false
	}
	return ca, key, true
}

// leafValid: a key pair that parses, is signed by ca, covers every name and is not due for renewal.
func (r *Rotator) leafValid(data map[string][]byte, ca *x509.Certificate) bool {
	pair, err := tls.X509KeyPair(data[KeyCert], data[KeyKey])
	if err != nil || len(pair.Certificate) == 0 {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || r.Clock.Now().Add(r.RenewBefore).After(cert.NotAfter) {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: r.Clock.Now()}); err != nil {
		return false
	}
	for _, d := range r.DNSNames {
		if !slices.Contains(cert.DNSNames, d) {
			return false
		}
	}
	for _, ip := range r.IPs {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func (r *Rotator) newCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	now := r.Clock.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "emqx-webhook-ca", SerialNumber: serial().String()},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * r.Validity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		MaxPathLen: 0, MaxPathLenZero: true, // it signs the serving certificates only, never another CA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign the CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

func (r *Rotator) newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	now := r.Clock.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the serving key: %w", err)
	}
	cn := "emqx-webhook"
	if len(r.DNSNames) > 0 {
		cn = r.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn}, DNSNames: r.DNSNames, IPAddresses: r.IPs,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(r.Validity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign the serving certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), encodeKey(key), nil
}

func certsIn(bundle []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return out
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func encodeKey(key *ecdsa.PrivateKey) []byte {
	der, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// Start keeps the certificate current until ctx ends (a manager Runnable): at once when the
// Secret changes (another replica renewed it) or a webhook configuration does (a caBundle wiped or
// replaced), and every hour.
func (r *Rotator) Start(ctx context.Context) error {
	t := r.Clock.NewTicker(time.Hour)
	defer t.Stop()
	changes := make(chan struct{}, 1)
	r.watch(ctx, changes)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		case <-changes:
		}
		if err := r.Ensure(ctx); err != nil {
			r.Log.Error(err, "certificate rotation")
		}
	}
}

// NeedLeaderElection: every replica keeps its own files current.
func (r *Rotator) NeedLeaderElection() bool { return false }

// watch signals changes of the Secret and of the webhook configurations on changes, each by name.
func (r *Rotator) watch(ctx context.Context, changes chan<- struct{}) {
	byName := func(name string) metav1.ListOptions {
		return metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	}
	starts := []func() (watch.Interface, error){
		func() (watch.Interface, error) {
			return r.Kube.CoreV1().Secrets(r.Namespace).Watch(ctx, byName(r.SecretName))
		},
	}
	adm := r.Kube.AdmissionregistrationV1()
	for _, name := range r.ValidatingWebhooks {
		starts = append(
			starts,
			func() (watch.Interface, error) { return adm.ValidatingWebhookConfigurations().Watch(ctx, byName(name)) },
		)
	}
	for _, name := range r.MutatingWebhooks {
		starts = append(
			starts,
			func() (watch.Interface, error) { return adm.MutatingWebhookConfigurations().Watch(ctx, byName(name)) },
		)
	}
	for _, name := range r.APIServices {
		starts = append(starts, func() (watch.Interface, error) {
			return r.Dynamic.Resource(APIServiceResource).Watch(ctx, byName(name))
		})
	}
	for _, start := range starts {
		go func() {
			for ctx.Err() == nil {
				w, err := start()
				if err != nil {
					r.Log.Error(err, "watch for certificate changes; retrying")
					select {
					case <-ctx.Done():
					case <-r.Clock.After(10 * time.Second):
					}
					continue
				}
				for range w.ResultChan() {
					select {
					case changes <- struct{}{}:
					default:
					}
				}
				w.Stop()
				select { // a watch the server ended: start another, not in a tight loop
				case <-ctx.Done():
				case <-r.Clock.After(time.Second):
				}
			}
		}()
	}
}

// install writes the pair where the webhook server reads it (it reloads on change) and injects
// the CA into the webhook configurations.
func (r *Rotator) install(ctx context.Context, data map[string][]byte) error {
	if err := os.MkdirAll(r.CertDir, 0o700); err != nil {
		return fmt.Errorf("certificate directory: %w", err)
	}
	for _, k := range []string{KeyCert, KeyKey} {
		path := filepath.Join(r.CertDir, k)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data[k]) {
			continue
		}
		if err := os.WriteFile(path+".tmp", data[k], 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	var errs []error
	adm := r.Kube.AdmissionregistrationV1()
	for _, name := range r.ValidatingWebhooks {
		errs = append(
			errs,
			injectCA(
				ctx,
				r,
				adm.ValidatingWebhookConfigurations(),
				"ValidatingWebhookConfiguration",
				name,
				data[KeyCACert],
				func(c *admissionregistrationv1.ValidatingWebhookConfiguration) (out webhookClients) {
					for _, w := range c.Webhooks {
						out = append(out, w.ClientConfig)
					}
					return out
				},
			),
		)
	}
	for _, name := range r.MutatingWebhooks {
		errs = append(
			errs,
			injectCA(
				ctx,
				r,
				adm.MutatingWebhookConfigurations(),
				"MutatingWebhookConfiguration",
				name,
				data[KeyCACert],
				func(c *admissionregistrationv1.MutatingWebhookConfiguration) (out webhookClients) {
					for _, w := range c.Webhooks {
						out = append(out, w.ClientConfig)
					}
					return out
				},
			),
		)
	}
	for _, name := range r.APIServices {
		errs = append(errs, r.injectAPIService(ctx, name, data[KeyCACert]))
	}
	return errors.Join(errs...)
}

// APIServiceResource is apiregistration.k8s.io/v1 apiservices.
var APIServiceResource = schema.GroupVersionResource{
	Group:    "apiregistration.k8s.io",
	Version:  "v1",
	Resource: "apiservices",
}

// injectAPIService sets ca as the caBundle of an APIService.
func (r *Rotator) injectAPIService(ctx context.Context, name string, ca []byte) error {
	api := r.Dynamic.Resource(APIServiceResource)
	svc, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		r.Log.Info("APIService not found yet; its caBundle is set on the next rotation", "name", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read APIService %s: %w", name, err)
	}
	if cur, _, _ := unstructured.NestedString(svc.Object, "spec", "caBundle"); cur == base64.StdEncoding.EncodeToString(
		ca,
	) {
		return nil
	}
	raw, _ := json.Marshal(map[string]any{"spec": map[string]any{"caBundle": ca}})
	if _, err := api.Patch(ctx, name, types.MergePatchType, raw, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("inject the CA into APIService %s: %w", name, err)
	}
	return nil
}

// configAPI is what injectCA needs of a webhook configuration client.
type configAPI[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Patch(
		ctx context.Context,
		name string,
		pt types.PatchType,
		data []byte,
		opts metav1.PatchOptions,
		subresources ...string,
	) (T, error)
}

// injectCA sets ca as the caBundle of every webhook of one configuration.
func injectCA[T any](ctx context.Context, r *Rotator, api configAPI[T], kind, name string, ca []byte,
	clientConfigs func(T) webhookClients) error {
	cfg, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		r.Log.Info(
			"webhook configuration not found yet; its caBundle is set on the next rotation",
			"kind",
			kind,
			"name",
			name,
		)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s %s: %w", kind, name, err)
	}
	var ops []map[string]any
	for i, c := range clientConfigs(cfg) {
		if !bytes.Equal(c.CABundle, ca) {
			ops = append(
				ops,
				map[string]any{"op": "add", "path": fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), "value": ca},
			)
		}
	}
	if len(ops) == 0 {
		return nil
	}
	raw, _ := json.Marshal(ops)
	if _, err := api.Patch(ctx, name, types.JSONPatchType, raw, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("inject the CA into %s %s: %w", kind, name, err)
	}
	return nil
}
