package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// AnnDashboardCASecret on an EMQX StatefulSet names a Secret of its namespace whose key ca.crt is
// the CA of EMQX's dashboard HTTPS listener (EMQX_DASHBOARD__LISTENERS__HTTPS__*): the plugin and
// the webhook then reach EMQX's API over HTTPS only, at the pod's HTTPS port, and believe only a
// certificate that CA signed for the pod (its IP or DNS name) or for AnnDashboardServerName.
const (
	AnnDashboardCASecret   = "emqx.kubectl-emqx.io/dashboard-ca-secret"
	AnnDashboardServerName = "emqx.kubectl-emqx.io/dashboard-tls-server-name"
)

// DashboardHTTPSPort is EMQX's default dashboard HTTPS port (dashboard.listeners.https.bind).
const DashboardHTTPSPort = 18084

// dashboardTLS is how to reach the cluster's API through pod: the port and, when a StatefulSet
// names the dashboard's CA, the TLS configuration that verifies the pod's certificate (nil: HTTP).
func dashboardTLS(
	ctx context.Context,
	kube kubernetes.Interface,
	cl *Cluster,
	pod *corev1.Pod,
) (int, *tls.Config, error) {
	var secret, serverName, service string
	for _, s := range cl.StatefulSets {
		if v := s.Annotations[AnnDashboardCASecret]; v != "" {
			secret, serverName, service = v, s.Annotations[AnnDashboardServerName], s.Spec.ServiceName
			break
		}
	}
	if secret == "" {
		return dashboardPort(pod), nil, nil
	}
	if kube == nil {
		return 0, nil, fmt.Errorf(
			"the dashboard CA Secret %s/%s cannot be read without a Kubernetes client",
			cl.Namespace,
			secret,
		)
	}
	s, err := kube.CoreV1().Secrets(cl.Namespace).Get(ctx, secret, metav1.GetOptions{})
	if err != nil {
		return 0, nil, fmt.Errorf(
			"read the dashboard CA Secret %s/%s (annotation %s): %w",
			cl.Namespace,
			secret,
			AnnDashboardCASecret,
			err,
		)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.Data["ca.crt"]) {
		return 0, nil, fmt.Errorf("the dashboard CA Secret %s/%s holds no PEM certificate under ca.crt (annotation %s)",
			cl.Namespace, secret, AnnDashboardCASecret)
	}
	names := []string{serverName}
	if serverName == "" {
		names = []string{pod.Status.PodIP}
		if service != "" {
			fqdn := pod.Name + "." + service + "." + pod.Namespace + ".svc"
			names = append(names, fqdn, fqdn+".cluster.local")
		}
	}
	return dashboardHTTPSPort(pod), &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The pod is reached at its IP or through a port-forward on loopback: the name to verify is
		// not the address dialled, so the chain and the names are verified here.
		InsecureSkipVerify:    true, // #nosec G402 -- VerifyPeerCertificate verifies chain and name
		VerifyPeerCertificate: verifyPod(pool, names),
	}, nil
}

// verifyPod accepts a certificate chain that pool signed for one of names.
func verifyPod(pool *x509.CertPool, names []string) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("EMQX's dashboard presented no certificate")
		}
		var certs []*x509.Certificate
		for _, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return fmt.Errorf("EMQX's dashboard certificate: %w", err)
			}
			certs = append(certs, c)
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
			return fmt.Errorf("EMQX's dashboard certificate is not from the CA of %s: %w", AnnDashboardCASecret, err)
		}
		if slices.ContainsFunc(names, func(n string) bool { return n != "" && certs[0].VerifyHostname(n) == nil }) {
			return nil
		}
		return fmt.Errorf(
			"EMQX's dashboard certificate is for none of %v (set %s to the name it carries)",
			names,
			AnnDashboardServerName,
		)
	}
}

// dashboardHTTPSPort: the container port EMQX's Helm chart names dashboardtls, else the port of
// EMQX_DASHBOARD__LISTENERS__HTTPS__BIND in the container's env, else EMQX's default.
func dashboardHTTPSPort(pod *corev1.Pod) int {
	c := EMQXContainer(&pod.Spec)
	if c == nil {
		return DashboardHTTPSPort
	}
	for _, p := range c.Ports {
		if p.Name == "dashboardtls" {
			return int(p.ContainerPort)
		}
	}
	for _, e := range c.Env {
		if e.Name == "EMQX_DASHBOARD__LISTENERS__HTTPS__BIND" {
			if p, err := strconv.Atoi(lastPort(e.Value)); err == nil && p > 0 {
				return p
			}
		}
	}
	return DashboardHTTPSPort
}

// lastPort is the port of a bind ("18084", "0.0.0.0:18084", "[::]:18084").
func lastPort(bind string) string {
	if _, p, err := net.SplitHostPort(bind); err == nil {
		return p
	}
	return bind
}
