package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
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
}

// NewClientAuth reads the CA file once, so that a wrong path or a file without a certificate
// stops the webhook at start with a message that names it.
func NewClientAuth(caFile string, names []string) (*ClientAuth, error) {
	a := &ClientAuth{CAFile: caFile, Names: names}
	if _, err := a.current(); err != nil {
		return nil, err
	}
	return a, nil
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
