package decide

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Config holds the webhook's global defaults; StatefulSet annotations override some per cluster.
type Config struct {
	ConnEvictRate     int64          // 0: EMQX's default
	SessEvictRate     int64          // 0: EMQX's default
	WaitHealthCheck   *time.Duration // nil: EMQX's default (60 s)
	WaitTakeover      *time.Duration // nil: EMQX's default (60 s)
	EvacuationTimeout time.Duration  // then the removal is allowed anyway
	AbandonAfter      time.Duration  // no removal asked this long after the node was empty: evacuation stopped
	UnreachableGrace  time.Duration  // EMQX API down this long: allow
	MaxConcurrent     int            // evacuations at once per EMQX cluster
	// DecisionTimeout bounds one decision's EMQX calls, well inside the API server's admission
	// timeout (10 s; annotation writes get 2 s more): a timed-out webhook call is allowed under
	// failurePolicy Ignore.
	DecisionTimeout time.Duration
	// StallAfter: a session eviction whose count has not moved this long is reported stalled.
	StallAfter time.Duration
	// Audit: observe only; every removal is allowed and what would have been held is an Event.
	Audit bool
}

// DefaultConfig is the webhook's default configuration.
func DefaultConfig() Config {
	return Config{
		EvacuationTimeout: 30 * time.Minute,
		AbandonAfter:      5 * time.Minute,
		UnreachableGrace:  time.Minute,
		MaxConcurrent:     1,
		DecisionTimeout:   6 * time.Second,
		StallAfter:        2 * time.Minute,
	}
}

// MaxEvacuationTimeout caps the per-StatefulSet evacuation time limit: no hold lasts longer.
const MaxEvacuationTimeout = 24 * time.Hour

// Settings are the Config as it applies to one workload: its annotations override the defaults.
type Settings struct {
	Timeout          time.Duration          // the evacuation time limit, capped at MaxEvacuationTimeout
	AbandonAfter     time.Duration          // how long after its node became empty an evacuation waits for its removal
	UnreachableGrace time.Duration          // EMQX API down this long: allow
	MaxConcurrent    int                    // evacuations at once per EMQX cluster (at least 1)
	StallAfter       time.Duration          // a session count unchanged this long is a stalled eviction
	Request          emqx.EvacuationRequest // rates and waits; MigrateTo is the plan's
	Audit            bool                   // observe only: allow everything, report what would be held
}

// For resolves the settings for owner (a StatefulSet or ReplicaSet; nil: the defaults).
func (c Config) For(owner metav1.Object) Settings {
	s := Settings{Timeout: c.EvacuationTimeout, AbandonAfter: c.AbandonAfter, UnreachableGrace: c.UnreachableGrace,
		MaxConcurrent: max(1, c.MaxConcurrent), StallAfter: c.StallAfter}
	if d := DurationAnnotation(owner, AnnTimeout, nil); d != nil && *d > 0 {
		s.Timeout = min(*d, MaxEvacuationTimeout)
	}
	if d := DurationAnnotation(owner, AnnAbandonAfter, nil); d != nil && *d > 0 {
		s.AbandonAfter = min(*d, MaxEvacuationTimeout)
	}
	if r := IntAnnotation(owner, AnnConnRate, c.ConnEvictRate); r > 0 {
		s.Request.ConnEvictRate = &r
	}
	if r := IntAnnotation(owner, AnnSessRate, c.SessEvictRate); r > 0 {
		s.Request.SessEvictRate = &r
	}
	s.Audit = c.Audit
	if owner != nil {
		switch owner.GetAnnotations()[AnnMode] {
		case ModeAudit:
			s.Audit = true
		case ModeEnforce:
			s.Audit = false
		}
	}
	s.Request.WaitHealthCheck = DurationAnnotation(owner, AnnWaitHealthCheck, c.WaitHealthCheck)
	s.Request.WaitTakeover = DurationAnnotation(owner, AnnWaitTakeover, c.WaitTakeover)
	return s
}
