package admission

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Requests counts the reviews each webhook receives, whatever becomes of them
// (emqx_webhook_admission_requests_total{webhook}): with failurePolicy Ignore, a webhook the API
// server does not call lets removals through unchecked, and only its silence tells.
type Requests struct{ total *prometheus.CounterVec }

// NewRequests registers the counter with reg.
func NewRequests(reg prometheus.Registerer) *Requests {
	r := &Requests{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "emqx_webhook_admission_requests_total",
		Help: "Admission reviews received, by webhook (evict, pod-delete, scale, pod-create: " +
			"the path it is served on).",
	}, []string{"webhook"})}
	reg.MustRegister(r.total)
	return r
}

// Count counts the requests h receives at path, under the webhook's name (the path without its /).
func (r *Requests) Count(path string, h http.Handler) http.Handler {
	c := r.total.WithLabelValues(strings.TrimPrefix(path, "/"))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c.Inc()
		h.ServeHTTP(w, req)
	})
}
