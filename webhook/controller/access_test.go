package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/internal/webhooktest"
)

// The webhook learns on day one that it cannot authenticate to a cluster: a Warning Event on the
// StatefulSet, the gauge, and the annotation `kubectl emqx status` shows; it says so again when
// access comes back.
func TestAccessCheckReportsRejectedCredentialsBeforeAnythingIsRemoved(t *testing.T) {
	f := newFixture(t, 10, 10)
	reg := prometheus.NewRegistry()
	a := NewAccessChecker(f.env, 10*time.Minute, reg)
	f.Sts.Labels["app.kubernetes.io/name"] = "emqx"
	f.Sts.Spec.Template.Labels = webhooktest.Labels()
	f.Update(f.Sts)
	a.CheckDue(context.Background())
	if got := f.StatefulSet().Annotations[AnnAPIAccess]; !strings.HasPrefix(got, "ok ") {
		t.Fatalf("annotation %q", got)
	}
	if ev := f.Events(); ev != "" {
		t.Fatalf("a first ok check raised events: %q", ev)
	}
	f.Conn.Rejected = true
	a.CheckDue(context.Background()) // not due yet
	if got := f.StatefulSet().Annotations[AnnAPIAccess]; !strings.HasPrefix(got, "ok ") {
		t.Fatalf("checked before the interval: %q", got)
	}
	f.Clock.Step(10 * time.Minute)
	a.CheckDue(context.Background())
	got := f.StatefulSet().Annotations[AnnAPIAccess]
	if !strings.HasPrefix(got, "credentials-rejected ") || !strings.Contains(got, "BAD_USERNAME_OR_PWD") ||
		!strings.Contains(got, decide.AnnCredentialsSecret) {
		t.Fatalf("annotation %q", got)
	}
	if ev := f.Events(); !strings.Contains(ev, "Warning EMQXCredentialsRejected") {
		t.Fatalf("events %q", ev)
	}
	if v := testutil.ToFloat64(a.gauge.WithLabelValues(ns, "emqx", AccessRejected)); v != 1 {
		t.Fatalf("gauge rejected = %v", v)
	}
	f.Conn.Rejected = false
	f.Clock.Step(10 * time.Minute)
	a.CheckDue(context.Background())
	if ev := f.Events(); !strings.Contains(ev, "Normal EMQXAPIAccessRestored") {
		t.Fatalf("events %q", ev)
	}
	if v := testutil.ToFloat64(a.gauge.WithLabelValues(ns, "emqx", AccessRejected)); v != 0 {
		t.Fatalf("gauge rejected = %v after access came back", v)
	}
	// The StatefulSet goes: so do its series and its last check.
	if err := f.Kube.Delete(context.Background(), f.Sts); err != nil {
		t.Fatal(err)
	}
	a.CheckDue(context.Background())
	if n := testutil.CollectAndCount(a.gauge); n != 0 || len(a.checked) != 0 {
		t.Fatalf("%d series and %d checks kept for a cluster that is gone", n, len(a.checked))
	}
}

func TestAccessFindingNamesWhatToDo(t *testing.T) {
	r, d := AccessFinding(nil)
	if r != AccessOK || d == "" {
		t.Fatal(r, d)
	}
	r, d = AccessFinding(context.DeadlineExceeded)
	if r != AccessUnreachable || !strings.Contains(d, "did not answer") {
		t.Fatal(r, d)
	}
}
