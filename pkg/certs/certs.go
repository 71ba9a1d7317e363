// Package certs is emqx-webhook's built-in self-signed certificate rotator: a CA and a serving
// certificate kept in one Secret that every replica shares, written to the webhook server's
// certificate directory, and the CA injected into the webhook configurations' caBundle.
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
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Secret keys.
const (
	KeyCACert = "ca.crt"
	KeyCert   = "tls.crt"
	KeyKey    = "tls.key"
)

// Rotator keeps the serving certificate valid.
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
	Validity         time.Duration // of the serving certificate; the CA lives 10 times longer
	RenewBefore      time.Duration // renew when fewer than this is left
	Clock            clock.WithTicker
	Log              logr.Logger
}

// Ensure makes sure the Secret holds a valid certificate for the names, writes it to CertDir and
// injects the CA. It is safe to run from every replica at once: the Secret's resourceVersion
// settles races, and losers use the winner's certificate.
func (r *Rotator) Ensure(ctx context.Context) error {
	for attempt := 0; attempt < 3; attempt++ {
		sec, err := r.Kube.CoreV1().Secrets(r.Namespace).Get(ctx, r.SecretName, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("read Secret %s/%s: %w", r.Namespace, r.SecretName, err)
		}
		if err == nil && r.valid(sec.Data) {
			return r.install(ctx, sec.Data)
		}
		data, gerr := r.generate()
		if gerr != nil {
			return gerr
		}
		if apierrors.IsNotFound(err) {
			sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: r.SecretName, Namespace: r.Namespace}, Type: corev1.SecretTypeTLS, Data: data}
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
		r.Log.Info("issued a new self-signed webhook certificate", "secret", r.Namespace+"/"+r.SecretName, "dnsNames", r.DNSNames, "ips", r.IPs)
		return r.install(ctx, data)
	}
	return fmt.Errorf("the webhook certificate Secret %s/%s keeps changing under us", r.Namespace, r.SecretName)
}

// Start keeps the certificate current until ctx ends (a manager Runnable).
func (r *Rotator) Start(ctx context.Context) error {
	t := r.Clock.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			if err := r.Ensure(ctx); err != nil {
				r.Log.Error(err, "certificate rotation")
			}
		}
	}
}

// NeedLeaderElection: every replica keeps its own files current.
func (r *Rotator) NeedLeaderElection() bool { return false }

// valid: a CA and a key pair that parse, cover every name, and are not due for renewal.
func (r *Rotator) valid(data map[string][]byte) bool {
	pair, err := tls.X509KeyPair(data[KeyCert], data[KeyKey])
	if err != nil || len(pair.Certificate) == 0 {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || r.Clock.Now().Add(r.RenewBefore).After(cert.NotAfter) {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[KeyCACert]) {
		return false
	}
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

func (r *Rotator) generate() (map[string][]byte, error) {
	now := r.Clock.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "emqx-webhook-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * r.Validity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign the CA: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the serving key: %w", err)
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
		return nil, fmt.Errorf("sign the serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		KeyCACert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		KeyCert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyKey:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
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
		errs = append(errs, r.inject(ctx, "ValidatingWebhookConfiguration", name, data[KeyCACert],
			func(ctx context.Context) ([]admissionregistrationv1.WebhookClientConfig, error) {
				cfg, err := adm.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return nil, err
				}
				out := make([]admissionregistrationv1.WebhookClientConfig, len(cfg.Webhooks))
				for i, w := range cfg.Webhooks {
					out[i] = w.ClientConfig
				}
				return out, nil
			},
			func(ctx context.Context, patch []byte) error {
				_, err := adm.ValidatingWebhookConfigurations().Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{})
				return err
			}))
	}
	for _, name := range r.MutatingWebhooks {
		errs = append(errs, r.inject(ctx, "MutatingWebhookConfiguration", name, data[KeyCACert],
			func(ctx context.Context) ([]admissionregistrationv1.WebhookClientConfig, error) {
				cfg, err := adm.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return nil, err
				}
				out := make([]admissionregistrationv1.WebhookClientConfig, len(cfg.Webhooks))
				for i, w := range cfg.Webhooks {
					out[i] = w.ClientConfig
				}
				return out, nil
			},
			func(ctx context.Context, patch []byte) error {
				_, err := adm.MutatingWebhookConfigurations().Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{})
				return err
			}))
	}
	return errors.Join(errs...)
}

// inject sets ca as the caBundle of every webhook of one configuration, read and patched by the
// given functions.
func (r *Rotator) inject(ctx context.Context, kind, name string, ca []byte,
	get func(context.Context) ([]admissionregistrationv1.WebhookClientConfig, error), patch func(context.Context, []byte) error) error {
	configs, err := get(ctx)
	if apierrors.IsNotFound(err) {
		r.Log.Info("webhook configuration not found yet; its caBundle is set on the next rotation", "kind", kind, "name", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s %s: %w", kind, name, err)
	}
	var ops []map[string]any
	for i, c := range configs {
		if !bytes.Equal(c.CABundle, ca) {
			ops = append(ops, map[string]any{"op": "add", "path": fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), "value": ca})
		}
	}
	if len(ops) == 0 {
		return nil
	}
	raw, _ := json.Marshal(ops)
	if err := patch(ctx, raw); err != nil {
		return fmt.Errorf("inject the CA into %s %s: %w", kind, name, err)
	}
	return nil
}
