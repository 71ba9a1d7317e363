package admission

import (
	"net/http"
	"time"
)

// An AdmissionReview of a pod or a scale is a few kilobytes; the API server answers a webhook
// that takes longer than its timeoutSeconds (10 at most) as failed. Requests that reach the
// webhook from elsewhere get no more than that: a bounded body, a bounded time.
const (
	MaxReviewBytes = 1 << 20
	MaxReviewTime  = 9 * time.Second
)

// Bounded limits an admission handler's request body to MaxReviewBytes and its whole run (the
// body's reading included) to MaxReviewTime. What goes past either is refused before any
// decision: nothing is started.
func Bounded(h http.Handler) http.Handler {
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxReviewBytes)
		h.ServeHTTP(w, r)
	})
	return http.TimeoutHandler(limited, MaxReviewTime, "admission review not handled in time")
}
