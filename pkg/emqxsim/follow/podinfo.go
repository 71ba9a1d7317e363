package follow

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// ClusterKey groups pods into EMQX clusters: namespace and instance label.
func ClusterKey(pod *corev1.Pod) string {
	return pod.Namespace + "/" + cluster.Instance(pod.Labels)
}

// Credentials are what a real EMQX in this pod would accept: its dashboard user and the API keys
// of its bootstrap file when that is mounted from a Secret.
func Credentials(pod *corev1.Pod, env map[string]string, src cluster.Sources) (map[string]string, []emqxsim.APIKey) {
	user, pw := cluster.DashboardUser(env)
	users := map[string]string{user: pw}
	name, key, ok := cluster.BootstrapSecret(pod, env)
	if !ok || src.Secret == nil {
		return users, nil
	}
	data, _ := src.Secret(name)
	var keys []emqxsim.APIKey
	for _, k := range cluster.ParseBootstrapFile(string(data[key])) {
		keys = append(keys, emqxsim.APIKey{Key: k.Key, Secret: k.Secret, Role: k.Role, Scopes: k.Scopes})
	}
	return users, keys
}

// Release is the EMQX release a pod runs, from its image's tag (emqx/emqx-enterprise:5.8.4,
// emqx/emqx:6.2.2, with or without a digest). A tag that is no release (latest, a digest alone)
// plays defaultRelease.
func Release(pod *corev1.Pod) string {
	image := cluster.Image(pod)
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		tag := image[i+1:]
		if _, err := emqx.ParseVersion(tag); err == nil {
			return tag
		}
	}
	return defaultRelease
}

// defaultRelease is what a pod whose image names no release plays.
const defaultRelease = "5.10.0"

// DurableSessions is durable_sessions.enable as EMQX reads it from the environment (HOCON: true,
// "true", on).
func DurableSessions(env map[string]string) bool {
	switch strings.ToLower(cluster.Unquote(env["EMQX_DURABLE_SESSIONS__ENABLE"])) {
	case "true", "on", "yes":
		return true
	}
	return false
}

// DataKey names the volume holding the pod's EMQX data: its first PersistentVolumeClaim, which
// survives the pod (StatefulSet volumeClaimTemplates). "" when the data dies with the pod.
func DataKey(pod *corev1.Pod) string {
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			return pod.Namespace + "/" + v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

// describe is a short label for logs.
func describe(pod *corev1.Pod) string { return fmt.Sprintf("%s/%s", pod.Namespace, pod.Name) }

// DashboardHTTP is dashboard.listeners.http.enable (on unless set false).
func DashboardHTTP(env map[string]string) bool {
	return !strings.EqualFold(cluster.Unquote(env["EMQX_DASHBOARD__LISTENERS__HTTP__ENABLE"]), "false")
}

// DashboardHTTPS is the dashboard's HTTPS listener as EMQX starts it from the environment
// (emqx_dashboard_schema: dashboard.listeners.https, enable false by default, bind 18084,
// ssl_options.certfile/keyfile): its port and server configuration, nil when it is off. The
// certificate and key files are read from the Secret volumes the container mounts there; a file
// that is not in one fails, as EMQX fails to start that listener.
func DashboardHTTPS(pod *corev1.Pod, env map[string]string, src cluster.Sources) (int, *tls.Config, error) {
	if !strings.EqualFold(cluster.Unquote(env["EMQX_DASHBOARD__LISTENERS__HTTPS__ENABLE"]), "true") {
		return 0, nil, nil
	}
	port := cluster.DashboardHTTPSPort
	if bind := cluster.Unquote(env["EMQX_DASHBOARD__LISTENERS__HTTPS__BIND"]); bind != "" {
		if _, p, err := net.SplitHostPort(bind); err == nil {
			bind = p
		}
		n, err := strconv.Atoi(bind)
		if err != nil {
			return 0, nil, fmt.Errorf("EMQX_DASHBOARD__LISTENERS__HTTPS__BIND %q is no port", bind)
		}
		port = n
	}
	read := func(v string) ([]byte, error) {
		file := cluster.Unquote(env["EMQX_DASHBOARD__LISTENERS__HTTPS__SSL_OPTIONS__"+v])
		name, key, ok := cluster.MountedSecret(pod, file)
		if !ok || src.Secret == nil {
			return nil, fmt.Errorf("%s %q is in no Secret volume", v, file)
		}
		data, ok := src.Secret(name)
		if !ok || len(data[key]) == 0 {
			return nil, fmt.Errorf("%s: Secret %s has no key %s", v, name, key)
		}
		return data[key], nil
	}
	certPEM, err := read("CERTFILE")
	if err != nil {
		return 0, nil, err
	}
	keyPEM, err := read("KEYFILE")
	if err != nil {
		return 0, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return 0, nil, fmt.Errorf("the dashboard's certificate and key: %w", err)
	}
	return port, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
