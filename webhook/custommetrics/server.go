package custommetrics

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/spf13/pflag"
	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/cmd/options"
)

// ServerOptions says where and how the custom metrics API is served.
type ServerOptions struct {
	Address    string // host:port
	CertDir    string // tls.crt and tls.key, those of the admission webhook (reloaded when they change)
	Kubeconfig string // "" in the cluster
}

// Server serves the custom metrics API of Provider: a generic Kubernetes API server that
// authenticates the aggregator's requests (the requestheader client CA of the
// extension-apiserver-authentication ConfigMap, or a token by TokenReview) and authorizes each by
// SubjectAccessReview. It is a controller-runtime Runnable and runs on every replica: reads need
// no leader.
type Server struct {
	adapter *basecmd.AdapterBase
}

// ParseAddress reads host:port; an empty host binds every address.
func ParseAddress(addr string) (net.IP, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, fmt.Errorf("custom metrics address %q: %w (want host:port, e.g. :6443)", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, 0, fmt.Errorf("custom metrics address %q: the port must be 1-65535", addr)
	}
	if host == "" {
		return nil, port, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("custom metrics address %q: the host must be an IP address or empty", addr)
	}
	return ip, port, nil
}

// NewServer checks the options and builds the server.
func NewServer(o ServerOptions, p *Provider) (*Server, error) {
	ip, port, err := ParseAddress(o.Address)
	if err != nil {
		return nil, err
	}
	opts := options.NewCustomMetricsAdapterServerOptions()
	opts.SecureServing.BindPort = port
	if ip != nil {
		opts.SecureServing.BindAddress = ip
	}
	opts.SecureServing.ServerCert.CertKey.CertFile = filepath.Join(o.CertDir, "tls.crt")
	opts.SecureServing.ServerCert.CertKey.KeyFile = filepath.Join(o.CertDir, "tls.key")
	opts.SecureServing.MinTLSVersion = "VersionTLS12"
	// HTTP/2 off, as on the webhook's other servers: stream-reset floods (CVE-2023-44487).
	opts.SecureServing.DisableHTTP2Serving = true
	opts.Authentication.RemoteKubeConfigFile = o.Kubeconfig
	opts.Authorization.RemoteKubeConfigFile = o.Kubeconfig
	// Its own flag set: the adapter would otherwise register flags on the process-wide one.
	a := &basecmd.AdapterBase{
		Name:                              "emqx-webhook-custom-metrics",
		CustomMetricsAdapterServerOptions: opts,
		RemoteKubeConfigFile:              o.Kubeconfig,
		FlagSet:                           pflag.NewFlagSet("custom-metrics", pflag.ContinueOnError),
	}
	a.WithCustomMetrics(p)
	if _, err := a.Server(); err != nil {
		return nil, fmt.Errorf("custom metrics API server: %w", err)
	}
	return &Server{adapter: a}, nil
}

// Start implements manager.Runnable: it serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if err := s.adapter.Run(ctx); err != nil {
		return fmt.Errorf("custom metrics API server: %w", err)
	}
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }
