package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

// Metrics count the webhook's decisions, ways out included.
type Metrics struct {
	decisions  *prometheus.CounterVec
	actions    *prometheus.CounterVec
	clientAuth prometheus.Gauge
}

// NewMetrics registers the webhook's metrics with reg (controller-runtime's registry in the binary).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "emqx_webhook_decisions_total",
		Help: "Admission decisions on EMQX pod removals and scale-downs, by cause, " +
			"verdict and reason (the way out taken, when allowed).",
	}, []string{"cause", "verdict", "reason"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emqx_webhook_controller_actions_total",
			Help: "What the controller did to evacuations it owns, by reason (EvacuationAbandoned, " +
				"EvacuationStopped, StaleEvacuationStopped).",
		}, []string{"reason"}),
		clientAuth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "emqx_webhook_client_auth_required",
			Help: "1 when the admission port requires the API server's client certificate (--client-ca-file); " +
				"0 when any caller that reaches it may send reviews.",
		})}
	reg.MustRegister(m.decisions, m.actions, m.clientAuth)
	return m
}

// ClientAuth records whether the admission port requires the API server's client certificate.
func (m *Metrics) ClientAuth(required bool) {
	if required {
		m.clientAuth.Set(1)
	} else {
		m.clientAuth.Set(0)
	}
}

// Action counts one thing the controllers did, by reason.
func (m *Metrics) Action(reason string) {
	if m != nil {
		m.actions.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) observe(cause string, v decide.Verdict) {
	if m == nil || v.Reason == decide.ReasonNotEMQX {
		return
	}
	verdict := "held"
	if v.Allowed {
		verdict = "allowed"
	}
	m.decisions.WithLabelValues(cause, verdict, v.Reason).Inc()
}
