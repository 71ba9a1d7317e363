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
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// ClientAuth makes a TLS server accept only clients that present a certificate signed by the CA
// in CAFile, for client authentication, and (when Names is set) whose common name or one of whose
// DNS names is among Names: the API server, configured with an AdmissionConfiguration whose
// kubeConfigFile presents that certificate to webhooks. Anyone else is refused during the TLS
// handshake, before a byte of an AdmissionReview is read.
//
// The file is read again when its content changes (a mounted ConfigMap or Secret is updated in
// place), so a CA can be rolled over by publishing old and new together for a while.
type ClientAuth struct {
	CAFile string
	Names  []string

	mu   sync.Mutex
	pem  []byte
	pool *x509.CertPool
	// self is a certificate made at start whose key never leaves this process: the server's own
	// readiness probe presents it (Probe), so probing is neither refused nor logged as a failed
	// handshake every few seconds.
	self tls.Certificate
}

// NewClientAuth reads the CA file once, so that a wrong path or a file without a certificate
// stops the webhook at start with a message that names it.
func NewClientAuth(caFile string, names []string) (*ClientAuth, error) {
	a := &ClientAuth{CAFile: caFile, Names: names}
	if _, err := a.current(); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the readiness probe's key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "emqx-webhook-readiness-probe"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign the readiness probe's certificate: %w", err)
	}
	a.self = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return a, nil
}

// Probe completes a TLS handshake with the server at addr as its own readiness probe: nil once
// the server listens and accepts the probe's certificate.
func (a *ClientAuth) Probe(ctx context.Context, addr string) error {
	d := tls.Dialer{Config: &tls.Config{Certificates: []tls.Certificate{a.self},
		InsecureSkipVerify: true}} // #nosec G402 -- our own server on loopback; only reachability is probed
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("webhook server is not reachable: %w", err)
	}
	return conn.Close()
}

// Apply sets the server side of the TLS configuration: a client certificate is required and
// verified by a.
func (a *ClientAuth) Apply(c *tls.Config) {
	c.ClientAuth = tls.RequireAnyClientCert
	c.VerifyPeerCertificate = a.verify
}

// current is the CA pool of the file's present content.
func (a *ClientAuth) current() (*x509.CertPool, error) {
	data, err := os.ReadFile(a.CAFile)
	if err != nil {
		return nil, fmt.Errorf("client CA file: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pool != nil && bytes.Equal(data, a.pem) {
		return a.pool, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("client CA file %s holds no PEM certificate", a.CAFile)
	}
	a.pem, a.pool = data, pool
	return pool, nil
}

func (a *ClientAuth) verify(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return errors.New("a client certificate is required")
	}
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		certs = append(certs, c)
	}
	pool, err := a.current()
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	if bytes.Equal(leaf.Raw, a.self.Certificate[0]) {
		return nil // the server's own readiness probe
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	if len(a.Names) == 0 || slices.Contains(a.Names, leaf.Subject.CommonName) ||
		slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return slices.Contains(a.Names, n) }) {
		return nil
	}
	return fmt.Errorf("client certificate for %q is not one of the allowed names", leaf.Subject.CommonName)
}
