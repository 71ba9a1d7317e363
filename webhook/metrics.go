package webhook

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

// Metrics count the webhook's decisions, ways out included, and time its holds and evacuations.
type Metrics struct {
	decisions  *prometheus.CounterVec
	actions    *prometheus.CounterVec
	clientAuth prometheus.Gauge
	holdTime   *prometheus.HistogramVec
	evacTime   prometheus.Histogram
	holds      *holds
}

// holdForgetAfter: a hold nobody asked about for this long is no longer in progress (its drain
// gave up, or another replica answers it now).
const holdForgetAfter = 10 * time.Minute

// NewMetrics registers the webhook's metrics with reg (controller-runtime's registry in the
// binary); clk times the holds.
func NewMetrics(reg prometheus.Registerer, clk clock.PassiveClock) *Metrics {
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
		}),
		holdTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "emqx_webhook_hold_duration_seconds",
			Help: "How long this replica held the removal of an EMQX pod, from its first held request to " +
				"the allowed one, by the reason it was allowed (the way out).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 s to about 2 h
		}, []string{"reason"}),
		evacTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "emqx_webhook_evacuation_duration_seconds",
			Help:    "How long the evacuations the webhook started took, from the start to the node found empty.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		holds: &holds{clock: clk, since: map[types.UID]hold{}, desc: prometheus.NewDesc(
			"emqx_webhook_hold_started_timestamp_seconds",
			"When this replica started to hold the removal of an EMQX pod (Unix time), one series per pod held now.",
			[]string{"namespace", "pod"}, nil,
		)},
	}
	reg.MustRegister(m.decisions, m.actions, m.clientAuth, m.holdTime, m.evacTime, m.holds)
	// The series alerts and dashboards take an increase of exist from the start at 0: a counter
	// first seen at 1 shows Prometheus no increase, and its first removal let go would go unseen.
	for _, reason := range letGo() {
		for _, cause := range []string{decide.CauseEviction, "delete", decide.CauseScaleDown} {
			m.decisions.WithLabelValues(cause, "allowed", reason)
		}
	}
	for _, reason := range append([]string{decide.ReasonEvacuated, decide.ReasonEmpty, decide.ReasonBypass},
		letGo()...) {
		m.holdTime.WithLabelValues(reason)
	}
	return m
}

// letGo are the ways out that remove a pod without a finished evacuation (EMQXWebhookRemovalLetGo).
func letGo() []string {
	return []string{decide.ReasonTimedOut, decide.ReasonUnreachable, decide.ReasonReplicasTimedOut,
		decide.ReasonNoTarget}
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

// Evacuated times an evacuation the webhook started, once its node was found empty.
func (m *Metrics) Evacuated(took time.Duration) {
	if m != nil {
		m.evacTime.Observe(took.Seconds())
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

// removal times the holds of a pod's removal: a held answer starts (or continues) its hold, an
// allowed one ends it and observes how long it was held.
func (m *Metrics) removal(pod *corev1.Pod, v decide.Verdict) {
	if m == nil || v.Reason == decide.ReasonNotEMQX {
		return
	}
	if !v.Allowed {
		m.holds.held(pod)
		return
	}
	if took, ok := m.holds.released(pod.UID); ok {
		m.holdTime.WithLabelValues(v.Reason).Observe(took.Seconds())
	}
}

// holds are the removals this replica holds now, each since its first held request. It is a
// collector: emqx_webhook_hold_started_timestamp_seconds has one series per pod held, gone when
// the hold ends or nobody asked about it for holdForgetAfter.
type holds struct {
	clock clock.PassiveClock
	desc  *prometheus.Desc
	mu    sync.Mutex
	since map[types.UID]hold
}

type hold struct {
	namespace, pod string
	since, last    time.Time
}

func (h *holds) held(pod *corev1.Pod) {
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.since[pod.UID]
	if !ok || now.Sub(e.last) > holdForgetAfter {
		e = hold{namespace: pod.Namespace, pod: pod.Name, since: now}
	}
	e.last = now
	h.since[pod.UID] = e
}

func (h *holds) released(uid types.UID) (time.Duration, bool) {
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.since[uid]
	delete(h.since, uid)
	if !ok || now.Sub(e.last) > holdForgetAfter {
		return 0, false
	}
	return now.Sub(e.since), true
}

// Describe implements prometheus.Collector.
func (h *holds) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector: the holds in progress, forgetting the stale ones.
func (h *holds) Collect(ch chan<- prometheus.Metric) {
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for uid, e := range h.since {
		if now.Sub(e.last) > holdForgetAfter {
			delete(h.since, uid)
			continue
		}
		ch <- prometheus.MustNewConstMetric(h.desc, prometheus.GaugeValue,
			float64(e.since.UnixNano())/1e9, e.namespace, e.pod)
	}
}
