package admission

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/webhook"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/internal/webhooktest"
)

const ns = webhooktest.NS

func node(i int) string { return webhooktest.Node(i) }

func readyPod(i int, uid string) *corev1.Pod { return webhooktest.ReadyPod(i, uid) }

func expect(t *testing.T, v decide.Verdict, allowed bool, reason, msg string) {
	t.Helper()
	webhooktest.Expect(t, v, allowed, reason, msg)
}

// fixture is the test world with the gate the handlers call.
type fixture struct {
	*webhooktest.World
	gate *webhook.Gate
}

func newFixture(t testing.TB, conns ...int64) *fixture {
	t.Helper()
	w := webhooktest.New(t, conns...)
	metrics := webhook.NewMetrics(prometheus.NewRegistry(), w.Clock)
	w.Exec.Counted, w.Exec.Evacuated = metrics.Action, metrics.Evacuated
	g := &webhook.Gate{Client: w.Kube, EMQX: w.Conn, Exec: w.Exec, Clock: w.Clock, Config: w.Config,
		Log: logr.Discard(), Metrics: metrics}
	return &fixture{World: w, gate: g}
}

// removal asks the gate to remove emqx-i, as an eviction does.
func (f *fixture) removal(i int) decide.Verdict {
	return f.gate.Removal(context.Background(), f.Pod(i), false, "eviction")
}
