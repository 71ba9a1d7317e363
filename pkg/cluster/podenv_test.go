package cluster

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
	got := ParseBootstrapFile("a:1\n\nb:2:viewer\na:3\nc:4:administrator:cluster_operations\nbroken\nd:5\n")
	want := []BootstrapKey{{Key: "a", Secret: "3"}, {Key: "b", Secret: "2", Role: "viewer"}, {Key: "c", Secret: "4", Role: "administrator"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v (loading stops at the malformed line)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
