package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/certs/certstest"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// serving is a serving certificate of ca for dns (and ip, when given).
func serving(t *testing.T, ca certstest.CA, dns string, ip net.IP) tls.Certificate {
	t.Helper()
	if ip == nil {
		return ca.Issue(t, dns, x509.ExtKeyUsageServerAuth, []string{dns})
	}
	return ca.Issue(t, dns, x509.ExtKeyUsageServerAuth, []string{dns}, ip)
}

// With the dashboard's CA named on the StatefulSet, EMQX's API is reached over HTTPS at the pod's
// HTTPS port and believed only with a certificate that CA signed for the pod (its IP, its DNS name
// under the headless Service) or for the name the StatefulSet gives; anything else is refused
// before a credential is sent.
func TestDashboardOverHTTPSIsVerified(t *testing.T) {
	ca, other := certstest.NewCA(t, "emqx-ca"), certstest.NewCA(t, "other")
	c, err := emqxsim.New(emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: simNode}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, tc := range map[string]struct {
		cert       tls.Certificate
		serverName string
		want       string // "" connects
	}{
		"signed for the pod's DNS name":             {serving(t, ca, "emqx-0.emqx-headless.mqtt.svc", nil), "", ""},
		"signed for the pod's IP":                   {serving(t, ca, "emqx", net.ParseIP("127.0.0.1")), "", ""},
		"signed for the name the StatefulSet gives": {serving(t, ca, "emqx.example.com", nil), "emqx.example.com", ""},
		"signed for another name":                   {serving(t, ca, "emqx.example.com", nil), "", "is for none of"},
		"signed by another CA": {
			serving(t, other, "emqx-0.emqx-headless.mqtt.svc", nil),
			"",
			"is not from the CA",
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(c.Handler(simNode))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{tc.cert}}
			srv.StartTLS()
			defer srv.Close()
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "emqx-0", Namespace: "mqtt"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "emqx", Env: []corev1.EnvVar{
					{Name: "EMQX_DASHBOARD__LISTENERS__HTTPS__BIND", Value: "0.0.0.0:" + port}}}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1",
					Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
			sts := appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: "mqtt",
				Annotations: map[string]string{
					AnnDashboardCASecret:   "emqx-dashboard-ca",
					AnnDashboardServerName: tc.serverName,
				}},
				Spec: appsv1.StatefulSetSpec{ServiceName: "emqx-headless"}}
			kube := kubefake.NewClientset(
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "emqx-dashboard-ca", Namespace: "mqtt"},
					Data: map[string][]byte{"ca.crt": ca.PEM}},
			)
			var dialled string
			a := Access{Kube: kube, Creds: emqx.Credentials{Username: "admin", Password: "public"},
				Forward: func(_ context.Context, p *corev1.Pod, port int) (string, func(), error) {
					dialled = net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))
					return "http://" + dialled, func() {}, nil
				}}
			conn, err := Connect(
				ctx,
				a,
				&Cluster{
					Name:         "emqx",
					Namespace:    "mqtt",
					StatefulSets: []appsv1.StatefulSet{sts},
					Pods:         []corev1.Pod{pod},
				},
			)
			if dialled != "127.0.0.1:"+port {
				t.Fatalf("dialled %s, not the pod's HTTPS port %s", dialled, port)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
				if _, err := conn.Nodes(ctx); err != nil {
					t.Fatal(err)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("connected or refused for another reason: %v; want %q", err, tc.want)
			}
		})
	}
}
