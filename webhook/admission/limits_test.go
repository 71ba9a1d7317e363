package admission

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// Every review is counted under its webhook's name, refused or not.
func TestRequestsAreCountedByWebhook(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := NewRequests(reg)
	h := r.Count(PathEviction, Bounded(&admission.Webhook{Handler: &countingHandler{}}))
	for _, body := range []string{"{}", strings.Repeat("x", MaxReviewBytes+1)} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, PathEviction, strings.NewReader(body)))
	}
	if got := testutil.ToFloat64(r.total.WithLabelValues("evict")); got != 2 ||
		testutil.CollectAndCount(r.total) != 1 {
		t.Fatalf("%v reviews counted under evict (want 2), %d series (want 1)", got, testutil.CollectAndCount(r.total))
	}
}
