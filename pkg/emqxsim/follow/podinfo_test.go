package follow

import (
	"crypto/x509"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/certs/certstest"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
)

// fixture decodes hack/fixtures/NAME for namespace "mqtt".
func fixture(t *testing.T, name string) []runtime.Object {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "hack", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("__NAMESPACE__", "mqtt", "__REPLICAS__", "3").Replace(string(raw))
	var out []runtime.Object
	for _, doc := range strings.Split(text, "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, obj)
	}
	return out
}

// podOf builds the pod a controller would create from a pod template.
func podOf(tmpl corev1.PodTemplateSpec, name, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "mqtt", Labels: tmpl.Labels},
		Spec:       tmpl.Spec,
		Status:     corev1.PodStatus{PodIP: ip, Phase: corev1.PodRunning},
	}
}

func TestNodeNamesOfHelmAndOperatorPods(t *testing.T) {
	helm := fixture(t, "helm-emqx.yaml")[2].(*appsv1.StatefulSet)
	op := fixture(t, "operator-emqx.yaml")
	core, repl := op[2].(*appsv1.StatefulSet), op[3].(*appsv1.ReplicaSet)
	secret := op[0].(*corev1.Secret)
	secrets := cluster.Sources{Secret: func(name string) (map[string][]byte, bool) {
		if name != secret.Name {
			return nil, false
		}
		data := map[string][]byte{}
		for k, v := range secret.StringData {
			data[k] = []byte(v)
		}
		return data, true
	}}
	cases := []struct {
		pod      *corev1.Pod
		name     string
		role     string
		key      string
		apiKeys  int
		password string
	}{
		{
			podOf(helm.Spec.Template, "emqx-2", "198.18.1.7"),
			"emqx@emqx-2.emqx-headless.mqtt.svc.cluster.local",
			"core",
			"mqtt/emqx",
			0,
			"kemqx-dashboard-pw",
		},
		{
			podOf(core.Spec.Template, "emqx-core-5d4b8c7f9-0", "198.18.2.3"),
			"emqx@emqx-core-5d4b8c7f9-0.emqx-headless.mqtt.svc.cluster.local",
			"core",
			"mqtt/emqx",
			1,
			"public",
		},
		{
			podOf(repl.Spec.Template, "emqx-replicant-7c9f6d5b4-x2kz9", "198.18.3.9"),
			"emqx@198.18.3.9",
			"replicant",
			"mqtt/emqx",
			1,
			"public",
		},
	}
	for _, tc := range cases {
		env := cluster.Env(tc.pod, secrets)
		if got := cluster.NodeName(tc.pod, env); got != tc.name {
			t.Errorf("%s: node %q, want %q", tc.pod.Name, got, tc.name)
		}
		if got := cluster.Role(tc.pod, env); got != tc.role {
			t.Errorf("%s: role %q", tc.pod.Name, got)
		}
		if got := ClusterKey(tc.pod); got != tc.key {
			t.Errorf("%s: cluster %q", tc.pod.Name, got)
		}
		users, keys := Credentials(tc.pod, env, secrets)
		if len(keys) != tc.apiKeys || users["admin"] != tc.password {
			t.Errorf("%s: users %v keys %v", tc.pod.Name, users, keys)
		}
		if tc.apiKeys == 1 && keys[0].Key != "emqx-operator-controller" {
			t.Errorf("%s: bootstrap key %v", tc.pod.Name, keys)
		}
	}
}

func TestDataKeyFollowsTheClaim(t *testing.T) {
	sts := fixture(t, "helm-emqx-pvc.yaml")[0].(*appsv1.StatefulSet)
	pod := podOf(sts.Spec.Template, "emqx-0", "198.18.1.2")
	if DataKey(pod) != "" {
		t.Fatal("a pod template alone has no claim")
	}
	// The StatefulSet controller adds a volume per claim template, named <template>-<pod>.
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "emqx-data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "emqx-data-emqx-0"}}})
	if got := DataKey(pod); got != "mqtt/emqx-data-emqx-0" {
		t.Fatalf("data key %q", got)
	}
}

// The real chart: EMQX_NAME and the dashboard user come from the ConfigMap loaded with envFrom.
func TestNodeNameAndCredentialsOfTheHelmChartsPods(t *testing.T) {
	objs := fixture(t, "helm-chart.yaml")
	var cm *corev1.ConfigMap
	var sts *appsv1.StatefulSet
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			cm = o
		case *appsv1.StatefulSet:
			sts = o
		}
	}
	pod := podOf(sts.Spec.Template, "emqx-emqx-enterprise-2", "198.18.1.7")
	pod.Spec.Hostname, pod.Spec.Subdomain = pod.Name, sts.Spec.ServiceName
	src := cluster.Sources{ConfigMap: func(name string) (map[string]string, bool) { return cm.Data, name == cm.Name }}
	env := cluster.Env(pod, src)
	want := "emqx-emqx-enterprise@emqx-emqx-enterprise-2.emqx-emqx-enterprise-headless.mqtt.svc.cluster.local"
	if got := cluster.NodeName(pod, env); got != want {
		t.Fatalf("node %q, want %q", got, want)
	}
	if users, _ := Credentials(pod, env, src); users["admin"] != "kemqx-dashboard-pw" {
		t.Fatalf("users %v: the chart's password comes from its ConfigMap", users)
	}
	// Read without its ConfigMap, as this project once did, the name is wrong: EMQX_NAME's default.
	want = "emqx@emqx-emqx-enterprise-2.emqx-emqx-enterprise-headless.mqtt.svc.cluster.local"
	if got := cluster.NodeName(pod, cluster.Env(pod, cluster.Sources{})); got != want {
		t.Fatalf("node without the ConfigMap %q", got)
	}
}

// The release a pod plays comes from its image's tag; a tag that names none plays the default.
func TestReleaseFromTheImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"emqx/emqx:6.2.2":                       "6.2.2",
		"emqx/emqx-enterprise:5.8.4@sha256:abc": "5.8.4",
		"registry:5000/emqx/emqx:5.3.2":         "5.3.2",
		"emqx/emqx:latest":                      defaultRelease,
		"registry:5000/emqx/emqx":               defaultRelease,
		"emqx/emqx@sha256:abc":                  defaultRelease,
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "emqx", Image: image}}}}
		if got := Release(pod); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}

// The dashboard's HTTPS listener starts as EMQX starts it: only when enabled, on its bind's port,
// with the certificate and key of the Secret volume mounted at the configured files; a file in no
// Secret volume fails it, as EMQX fails to start that listener.
func TestDashboardHTTPSListenerFromTheEnvironment(t *testing.T) {
	crt, key := certstest.PEM(t, certstest.NewCA(t, "ca").Issue(t, "emqx", x509.ExtKeyUsageServerAuth, nil))
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{
			{Name: "emqx", VolumeMounts: []corev1.VolumeMount{{Name: "tls", MountPath: "/opt/emqx/etc/tls"}}},
		},
		Volumes: []corev1.Volume{
			{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "dash"}}},
		}}}
	src := cluster.Sources{Secret: func(name string) (map[string][]byte, bool) {
		return map[string][]byte{"tls.crt": crt, "tls.key": key}, name == "dash"
	}}
	env := map[string]string{
		"EMQX_DASHBOARD__LISTENERS__HTTPS__ENABLE":                "true",
		"EMQX_DASHBOARD__LISTENERS__HTTPS__BIND":                  "0.0.0.0:18085",
		"EMQX_DASHBOARD__LISTENERS__HTTPS__SSL_OPTIONS__CERTFILE": "/opt/emqx/etc/tls/tls.crt",
		"EMQX_DASHBOARD__LISTENERS__HTTPS__SSL_OPTIONS__KEYFILE":  "/opt/emqx/etc/tls/tls.key",
	}
	if port, cfg, err := DashboardHTTPS(pod, env, src); err != nil || port != 18085 || cfg == nil ||
		len(cfg.Certificates) != 1 {
		t.Fatalf("enabled: port %d, config %v, %v", port, cfg != nil, err)
	}
	off := map[string]string{}
	maps.Copy(off, env)
	delete(off, "EMQX_DASHBOARD__LISTENERS__HTTPS__ENABLE")
	if _, cfg, err := DashboardHTTPS(pod, off, src); cfg != nil || err != nil {
		t.Fatalf("EMQX's default is off: %v %v", cfg != nil, err)
	}
	env["EMQX_DASHBOARD__LISTENERS__HTTPS__SSL_OPTIONS__KEYFILE"] = "/etc/emqx/key.pem"
	if _, _, err := DashboardHTTPS(pod, env, src); err == nil || !strings.Contains(err.Error(), "in no Secret volume") {
		t.Fatalf("a key file in no Secret volume: %v", err)
	}
	if !DashboardHTTP(map[string]string{}) ||
		DashboardHTTP(map[string]string{"EMQX_DASHBOARD__LISTENERS__HTTP__ENABLE": "false"}) {
		t.Fatal("dashboard.listeners.http.enable")
	}
}
