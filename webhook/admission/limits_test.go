package admission

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
