package cluster

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNodeNameOverridesAndDefaults(t *testing.T) {
	pod := &corev1.Pod{Status: corev1.PodStatus{PodIP: "198.18.1.4"}}
	for env, want := range map[string]string{
		"":                                       "emqx@198.18.1.4",
		"EMQX_NAME=my":                           "my@198.18.1.4",
		"EMQX_NODE__NAME=a@b":                    "a@b",
		"EMQX_NODE_NAME=x@y,EMQX_NODE__NAME=a@b": "x@y",
	} {
		m := map[string]string{}
		for _, kv := range strings.Split(env, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = v
			}
		}
		if got := NodeName(pod, m); got != want {
			t.Errorf("%q: %q, want %q", env, got, want)
		}
	}
}

func TestParseBootstrapFile(t *testing.T) {
	got := ParseBootstrapFile(
		"a:1\n\nb:2:viewer\na:3\nc:4:administrator:cluster_operations, publish\ne:6:viewer:\nbroken\nd:5\n",
	)
	// Scopes: omitted is unrestricted (nil), a trailing empty field is "no scopes".
	want := []BootstrapKey{{Key: "a", Secret: "3"}, {Key: "b", Secret: "2", Role: "viewer"},
		{Key: "c", Secret: "4", Role: "administrator", Scopes: []string{"cluster_operations", "publish"}},
		{Key: "e", Secret: "6", Role: "viewer", Scopes: []string{}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v (loading stops at the malformed line)", got, want)
	}
}

// Kubelet's rules: envFrom first (prefixes, keys with '=' skipped, unreadable sources left out),
// then env in order with $(VAR) expansion of earlier variables ($$ escapes, unknown stays), and
// valueFrom from fields, ConfigMap and Secret keys.
func TestEnvResolvesEnvFromAndValueFromAsKubeletDoes(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "emqx-0", Namespace: "mqtt", Labels: map[string]string{"tier": "mqtt"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "emqx",
			EnvFrom: []corev1.EnvFromSource{
				{
					ConfigMapRef: &corev1.ConfigMapEnvSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "emqx-env"},
					},
				},
				{
					Prefix: "S_",
					SecretRef: &corev1.SecretEnvSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "emqx-secret"},
					},
				},
				{
					ConfigMapRef: &corev1.ConfigMapEnvSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "missing"},
						Optional:             ptrTo(true),
					},
				},
			},
			Env: []corev1.EnvVar{
				{Name: "EMQX_NAME", Value: "override"},
				{Name: "HOST", Value: "$(POD).$(EMQX_NAME).$(UNKNOWN).$$(POD)"},
				{
					Name:      "POD",
					ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
				},
				{Name: "LATE", Value: "$(POD)"},
				{
					Name: "TIER",
					ValueFrom: &corev1.EnvVarSource{
						FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"},
					},
				},
				{
					Name: "PW",
					ValueFrom: &corev1.EnvVarSource{
						SecretKeyRef: &corev1.SecretKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: "emqx-secret"},
							Key:                  "pw",
						},
					},
				},
				{
					Name: "CM",
					ValueFrom: &corev1.EnvVarSource{
						ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: "emqx-env"},
							Key:                  "EMQX_NAME",
						},
					},
				},
			},
		}}},
	}
	src := Sources{
		ConfigMap: func(name string) (map[string]string, bool) {
			if name != "emqx-env" {
				return nil, false
			}
			return map[string]string{"EMQX_NAME": "from-cm", "A=B": "skipped", "EMQX_CLUSTER__DNS__NAME": "x"}, true
		},
		Secret: func(name string) (map[string][]byte, bool) {
			if name != "emqx-secret" {
				return nil, false
			}
			return map[string][]byte{"pw": []byte("s3cret")}, true
		},
	}
	env := Env(pod, src)
	want := map[string]string{
		"EMQX_NAME":               "override",
		"EMQX_CLUSTER__DNS__NAME": "x",
		"S_pw":                    "s3cret",
		"HOST":                    "$(POD).override.$(UNKNOWN).$(POD)",
		"POD":                     "emqx-0",
		"LATE":                    "emqx-0",
		"TIER":                    "mqtt",
		"PW":                      "s3cret",
		"CM":                      "from-cm",
	}
	if len(env) != len(want) {
		t.Fatalf("env %v, want %v", env, want)
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}

// Without EMQX_HOST, EMQX's entrypoint reads /etc/hosts, which kubelet writes from the pod's
// hostname and subdomain (a StatefulSet's serviceName).
func TestNodeNameDerivedAsTheEntrypointDoesWithoutEMQXHost(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "emqx-emqx-enterprise-0", Namespace: "mqtt"},
		Spec:   corev1.PodSpec{Hostname: "emqx-emqx-enterprise-0", Subdomain: "emqx-emqx-enterprise-headless"},
		Status: corev1.PodStatus{PodIP: "198.18.1.4"}}
	dns := map[string]string{
		"EMQX_NAME":                        "emqx-emqx-enterprise",
		"EMQX_CLUSTER__DISCOVERY_STRATEGY": "dns",
		"EMQX_CLUSTER__DNS__RECORD_TYPE":   "srv",
		"EMQX_CLUSTER__DNS__NAME":          "emqx-emqx-enterprise-headless.mqtt.svc.cluster.local",
	}
	for _, tc := range []struct {
		what string
		env  map[string]string
		sub  string
		want string
	}{
		{
			"dns srv, FQDN in /etc/hosts",
			dns,
			"emqx-emqx-enterprise-headless",
			"emqx-emqx-enterprise@emqx-emqx-enterprise-0.emqx-emqx-enterprise-headless.mqtt.svc.cluster.local",
		},
		{"dns srv, no subdomain: no FQDN in /etc/hosts", dns, "", "emqx-emqx-enterprise@198.18.1.4"},
		{
			"dns srv, another service",
			map[string]string{
				"EMQX_CLUSTER__DISCOVERY_STRATEGY": "dns",
				"EMQX_CLUSTER__DNS__RECORD_TYPE":   "srv",
				"EMQX_CLUSTER__DNS__NAME":          "other.mqtt.svc.cluster.local",
			},
			"emqx-emqx-enterprise-headless",
			"emqx@198.18.1.4",
		},
		{
			"dns a records",
			map[string]string{
				"EMQX_CLUSTER__DISCOVERY_STRATEGY": "dns",
				"EMQX_CLUSTER__DNS__RECORD_TYPE":   "a",
				"EMQX_CLUSTER__DNS__NAME":          "emqx-emqx-enterprise-headless.mqtt.svc.cluster.local",
			},
			"emqx-emqx-enterprise-headless",
			"emqx@198.18.1.4",
		},
		{
			"k8s dns",
			map[string]string{
				"EMQX_CLUSTER__DISCOVERY_STRATEGY": "k8s",
				"EMQX_CLUSTER__K8S__ADDRESS_TYPE":  "dns",
				"EMQX_CLUSTER__K8S__NAMESPACE":     "mqtt",
			},
			"",
			"emqx@198-18-1-4.mqtt.pod.cluster.local",
		},
		{
			"k8s hostname",
			map[string]string{
				"EMQX_CLUSTER__DISCOVERY_STRATEGY": "k8s",
				"EMQX_CLUSTER__K8S__ADDRESS_TYPE":  "hostname",
				"EMQX_CLUSTER__K8S__NAMESPACE":     "mqtt",
			},
			"emqx-emqx-enterprise-headless",
			"emqx@emqx-emqx-enterprise-0.emqx-emqx-enterprise-headless.mqtt.svc.cluster.local",
		},
	} {
		p := pod.DeepCopy()
		p.Spec.Subdomain = tc.sub
		if got := NodeName(p, tc.env); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.what, got, tc.want)
		}
	}
}

func TestPodOfMatchesEveryPodIPTheDashedIPAndTheHostname(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "emqx-1"}, Status: corev1.PodStatus{PodIP: "198.18.1.4",
		PodIPs: []corev1.PodIP{{IP: "198.18.1.4"}, {IP: "2001:db8::4"}}}}
	for node, want := range map[string]bool{
		"emqx@198.18.1.4":                                   true,
		"emqx@2001:db8::4":                                  true,
		"emqx@[2001:db8::4]":                                true,
		"emqx@198-18-1-4.mqtt.pod.cluster.local":            true,
		"emqx@emqx-1.emqx-headless.mqtt.svc.cluster.local":  true,
		"emqx@emqx-10.emqx-headless.mqtt.svc.cluster.local": false,
		"emqx@198.18.1.40":                                  false,
		"emqx":                                              false,
	} {
		if got := PodOf(node, pod); got != want {
			t.Errorf("PodOf(%q) = %v, want %v", node, got, want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// EMQX 6.2.1+ with EMQX_SECURITY_PROFILE=hardened binds a dashboard given as a bare port to
// loopback: the API is out of reach unless an address is given.
func TestHardenedLoopback(t *testing.T) {
	for env, want := range map[string]bool{
		"":                                   false,
		"EMQX_SECURITY_PROFILE=legacy":       false,
		"EMQX_SECURITY_PROFILE=hardened":     true,
		"EMQX_SECURITY_PROFILE=\"hardened\"": true,
		"EMQX_SECURITY_PROFILE=hardened,EMQX_DASHBOARD__LISTENERS__HTTP__BIND=18083":         true,
		"EMQX_SECURITY_PROFILE=hardened,EMQX_DASHBOARD__LISTENERS__HTTP__BIND=0.0.0.0:18083": false,
	} {
		m := map[string]string{}
		for _, kv := range strings.Split(env, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = v
			}
		}
		if got := HardenedLoopback(m); got != want {
			t.Errorf("%q: %v, want %v", env, got, want)
		}
	}
}
