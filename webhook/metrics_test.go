package webhook

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

// family gathers one metric family from reg (nil when it has no series).
func family(t *testing.T, reg prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

// labelsOf are a metric's labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// A held removal is a hold in progress (one series for its pod, from its first held request); the
// allowed one ends it and times it by the way out; the evacuation is timed once, when found empty.
func TestHoldsAndEvacuationsAreTimed(t *testing.T) {
	f := newFixture(t, 100, 100)
	start := f.Clock.Now()
	expect(t, f.removal(0), false, decide.ReasonStarted, "")
	f.Clock.Step(30 * time.Second)
	expect(t, f.removal(0), false, decide.ReasonEvacuating, "")
	holds := family(t, f.reg, "emqx_webhook_hold_started_timestamp_seconds")
	if holds == nil || len(holds.GetMetric()) != 1 ||
		labelsOf(holds.GetMetric()[0])["pod"] != "emqx-0" || labelsOf(holds.GetMetric()[0])["namespace"] != ns ||
		holds.GetMetric()[0].GetGauge().GetValue() != float64(start.Unix()) {
		t.Fatalf("a hold in progress, timed from its first request at %v: %v", start.Unix(), holds)
	}
	for f.Evacuation(0) != "prohibiting" {
		f.Sim.Advance(time.Second)
	}
	f.Clock.Step(30 * time.Second)
	expect(t, f.removal(0), true, decide.ReasonEvacuated, "")
	if holds := family(t, f.reg, "emqx_webhook_hold_started_timestamp_seconds"); holds != nil {
		t.Fatalf("holds in progress after the removal was allowed: %v", holds)
	}
	held := family(t, f.reg, "emqx_webhook_hold_duration_seconds")
	observed := 0
	for _, m := range held.GetMetric() {
		if n := m.GetHistogram().GetSampleCount(); n > 0 {
			observed++
			if labelsOf(m)["reason"] != decide.ReasonEvacuated || n != 1 || m.GetHistogram().GetSampleSum() != 60 {
				t.Fatalf("the hold of a minute, by its way out: %v", m)
			}
		}
	}
	if observed != 1 {
		t.Fatalf("%d hold durations observed, want 1: %v", observed, held)
	}
	// The evacuation's completion is announced once: a retry does not time it again.
	expect(t, f.removal(0), true, decide.ReasonEvacuated, "")
	evac := family(t, f.reg, "emqx_webhook_evacuation_duration_seconds")
	if evac == nil || evac.GetMetric()[0].GetHistogram().GetSampleCount() != 1 ||
		evac.GetMetric()[0].GetHistogram().GetSampleSum() != 60 {
		t.Fatalf("the evacuation of a minute, timed once: %v", evac)
	}
}

// A hold nobody asks about any more (its drain gave up) stops being in progress.
func TestAnAbandonedHoldIsForgotten(t *testing.T) {
	f := newFixture(t, 100, 100)
	expect(t, f.removal(0), false, decide.ReasonStarted, "")
	if holds := family(t, f.reg, "emqx_webhook_hold_started_timestamp_seconds"); len(holds.GetMetric()) != 1 {
		t.Fatalf("holds in progress: %v, want one", holds)
	}
	f.Clock.Step(holdForgetAfter + time.Second)
	if holds := family(t, f.reg, "emqx_webhook_hold_started_timestamp_seconds"); holds != nil {
		t.Fatalf("holds in progress after nobody asked for %v: %v", holdForgetAfter, holds)
	}
}

// The series an alert takes an increase of exist at 0 from the start: Prometheus sees no increase
// in a counter that first appears at 1, so the first removal let go would never alert.
func TestLetGoSeriesStartAtZero(t *testing.T) {
	f := newFixture(t, 100, 100)
	decisions := family(t, f.reg, "emqx_webhook_decisions_total")
	seen := map[string]bool{}
	for _, m := range decisions.GetMetric() {
		l := labelsOf(m)
		if l["verdict"] == "allowed" && m.GetCounter().GetValue() == 0 {
			seen[l["cause"]+"/"+l["reason"]] = true
		}
	}
	for _, cause := range []string{decide.CauseEviction, "delete", decide.CauseScaleDown} {
		for _, reason := range []string{decide.ReasonTimedOut, decide.ReasonUnreachable,
			decide.ReasonReplicasTimedOut, decide.ReasonNoTarget} {
			if !seen[cause+"/"+reason] {
				t.Errorf("no decisions series for %s allowed by %s at 0", cause, reason)
			}
		}
	}
	holds := family(t, f.reg, "emqx_webhook_hold_duration_seconds")
	byReason := map[string]bool{}
	for _, m := range holds.GetMetric() {
		if m.GetHistogram().GetSampleCount() == 0 {
			byReason[labelsOf(m)["reason"]] = true
		}
	}
	if !byReason[decide.ReasonUnreachable] || !byReason[decide.ReasonEvacuated] {
		t.Errorf("hold durations start at 0 for %v", byReason)
	}
}
