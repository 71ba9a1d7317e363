package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count the webhook's decisions, ways out included.
type Metrics struct {
	decisions *prometheus.CounterVec
	actions   *prometheus.CounterVec
}

// NewMetrics registers the webhook's metrics with reg (controller-runtime's registry in the binary).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "emqx_webhook_decisions_total",
		Help: "Admission decisions on EMQX pod removals and scale-downs, by cause, verdict and reason (the way out taken, when allowed).",
	}, []string{"cause", "verdict", "reason"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emqx_webhook_controller_actions_total",
			Help: "What the controller did to evacuations it owns, by reason (EvacuationAbandoned, EvacuationStopped, StaleEvacuationStopped).",
		}, []string{"reason"})}
	reg.MustRegister(m.decisions, m.actions)
	return m
}

func (m *Metrics) action(reason string) {
	if m != nil {
		m.actions.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) observe(cause string, v Verdict) {
	if m == nil || v.Reason == ReasonNotEMQX {
		return
	}
	verdict := "held"
	if v.Allowed {
		verdict = "allowed"
	}
	m.decisions.WithLabelValues(cause, verdict, v.Reason).Inc()
}
