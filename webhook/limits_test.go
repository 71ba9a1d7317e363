package webhook

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

type countingHandler struct{ calls int }

func (h *countingHandler) Handle(context.Context, admission.Request) admission.Response {
	h.calls++
	return admission.Allowed("")
}

// A review larger than MaxReviewBytes is refused before any decision (controller-runtime alone
// reads up to 7 MiB).
func TestOversizedReviewsAreRefusedBeforeAnyDecision(t *testing.T) {
	inner := &countingHandler{}
	h := Bounded(&admission.Webhook{Handler: inner})
	big := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","pad":"` +
		strings.Repeat("x", 2*MaxReviewBytes) + `"}}`
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/evict", bytes.NewBufferString(big))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	if inner.calls != 0 {
		t.Fatalf("an oversized review reached the decision (status %d)", rec.Code)
	}
	small := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1"}}`
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodPost, "/evict", bytes.NewBufferString(small))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	if inner.calls != 1 || rec.Code != http.StatusOK {
		t.Fatalf("a normal review: %d calls, status %d", inner.calls, rec.Code)
	}
}

// A decision's writes share one bound: writeGrace past its deadline, all of them together, so
// three writes after a hanging EMQX cannot push the call past the API server's timeout.
func TestWritesShareOneBoundPastTheDecisionsDeadline(t *testing.T) {
	for _, c := range []struct {
		left        time.Duration
		hasDeadline bool
		want        time.Duration
	}{
		{5 * time.Second, true, writeGrace},                      // well before the deadline: a write's own bound
		{-500 * time.Millisecond, true, 1500 * time.Millisecond}, // half a second past it: what is left
		{-writeGrace, true, 0},                                   // the shared bound is spent
		{-time.Minute, true, 0},
		{0, false, writeGrace}, // a controller's context
	} {
		if got := writeTimeout(c.left, c.hasDeadline); got != c.want {
			t.Errorf("left %v (deadline %v): %v, want %v", c.left, c.hasDeadline, got, c.want)
		}
	}
}
