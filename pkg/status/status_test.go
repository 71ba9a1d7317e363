package status

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

func runningPod(name, ip string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: "emqx", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			}},
	}
}

// Three pods and one EMQX node: the report says why (EMQX 5.9+ without a licence key is
// single-node; or discovery failed) instead of leaving two rows unexplained.
func TestReportExplainsPodsWithoutANode(t *testing.T) {
	pods := []corev1.Pod{
		runningPod("emqx-0", "198.18.1.2"),
		runningPod("emqx-1", "198.18.1.3"),
		runningPod("emqx-2", "198.18.1.4"),
	}
	one := []emqx.Node{{Node: "emqx@198.18.1.2", NodeStatus: emqx.NodeRunning}}
	r := Build(one, emqx.GlobalStatus{}, pods, evacuation.DurableOff)
	if !strings.Contains(r.Warning, "EMQX lists 1 node while 3 EMQX pods run") ||
		!strings.Contains(r.Warning, "licence key") {
		t.Fatalf("warning %q", r.Warning)
	}
	all := append(
		one,
		emqx.Node{Node: "emqx@198.18.1.3", NodeStatus: emqx.NodeRunning},
		emqx.Node{Node: "emqx@198.18.1.4", NodeStatus: emqx.NodeRunning},
	)
	if r := Build(all, emqx.GlobalStatus{}, pods, evacuation.DurableOff); r.Warning != "" {
		t.Fatalf("a whole cluster warns: %q", r.Warning)
	}
	two := all[:2]
	if r := Build(two, emqx.GlobalStatus{}, pods, evacuation.DurableOff); !strings.Contains(
		r.Warning,
		"2 nodes while 3",
	) {
		t.Fatalf("warning %q", r.Warning)
	}
}

// A session eviction emqx-webhook found stalled shows as such.
func TestReportShowsAStalledEviction(t *testing.T) {
	pod := runningPod("emqx-0", "198.18.1.2")
	pod.Annotations = map[string]string{"emqx.kubectl-emqx.io/evacuation-sessions-left": "2 stalled"}
	nodes := []emqx.Node{{Node: "emqx@198.18.1.2", NodeStatus: emqx.NodeRunning, Connections: 2}}
	g := emqx.GlobalStatus{
		Evacuations: []emqx.Evacuation{{Node: "emqx@198.18.1.2", State: emqx.EvacuationEvictingSessions,
			Stats: emqx.Stats{CurrentSessions: 2}}},
	}
	r := Build(nodes, g, []corev1.Pod{pod}, evacuation.DurableOff)
	if r.Rows[0].State != "evacuation evicting_sessions (stalled)" {
		t.Fatalf("state %q", r.Rows[0].State)
	}
}
