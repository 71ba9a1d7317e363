package certs

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/certs/certstest"
)

// serve runs a TLS server configured by auth on loopback and answers "ok" to each connection that
// passes the handshake.
func serve(t *testing.T, auth *ClientAuth) string {
	t.Helper()
	server := certstest.NewCA(t, "server-ca").Issue(t, "localhost", x509.ExtKeyUsageServerAuth, nil)
	cfg := &tls.Config{Certificates: []tls.Certificate{server}, MinVersion: tls.VersionTLS12}
	auth.Apply(cfg)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err == nil {
					_, _ = io.WriteString(c, "ok")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// answered: whether a client presenting certs (none if empty) gets past the server's handshake.
func answered(addr string, certs ...tls.Certificate) bool {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, Certificates: certs}) // #nosec G402 -- the server side is under test
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b) == "ok"
}

func TestClientAuthAdmitsOnlyClientsOfItsCA(t *testing.T) {
	ca, other := certstest.NewCA(t, "apiserver-client-ca"), certstest.NewCA(t, "other")
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := NewClientAuth(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, auth)
	apiserver := ca.Issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth, nil)
	for name, c := range map[string]struct {
		certs []tls.Certificate
		want  bool
	}{
		"the API server's certificate": {[]tls.Certificate{apiserver}, true},
		"no certificate":               {nil, false},
		"a certificate of another CA": {
			[]tls.Certificate{other.Issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth, nil)}, false},
		"a serving certificate of the same CA": {
			[]tls.Certificate{ca.Issue(t, "kube-apiserver", x509.ExtKeyUsageServerAuth, nil)}, false},
	} {
		if got := answered(addr, c.certs...); got != c.want {
			t.Errorf("%s: answered %v, want %v", name, got, c.want)
		}
	}

	// The server's own readiness probe gets through, and its certificate is this process's alone.
	if err := auth.Probe(t.Context(), addr); err != nil || !answered(addr, auth.self) {
		t.Errorf("the readiness probe: %v", err)
	}
	other2, err := NewClientAuth(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if answered(addr, other2.self) {
		t.Error("another process's probe certificate was admitted")
	}

	// A new CA published in place is read at the next handshake; the old one's clients are refused.
	if err := os.WriteFile(file, other.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if answered(addr, apiserver) || !answered(addr, other.Issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth, nil)) {
		t.Error("the CA file's new content was not used")
	}
}

func TestClientAuthNamesRestrictTheCAsClients(t *testing.T) {
	ca := certstest.NewCA(t, "cluster-ca")
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := NewClientAuth(file, []string{"kube-apiserver-webhook-client"})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, auth)
	if !answered(addr, ca.Issue(t, "kube-apiserver-webhook-client", x509.ExtKeyUsageClientAuth, nil)) {
		t.Error("the allowed name was refused")
	}
	if answered(addr, ca.Issue(t, "some-user", x509.ExtKeyUsageClientAuth, nil)) {
		t.Error("another client of the same CA was admitted")
	}
}

func TestClientAuthRefusesAFileWithoutACertificate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{file: "holds no PEM certificate", file + ".missing": "no such file"} {
		if _, err := NewClientAuth(path, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}
