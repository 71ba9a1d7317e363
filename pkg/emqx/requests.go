package emqx

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// EvacuationRequest is the body of POST /load_rebalance/{node}/evacuation/start. Nil and empty
// fields are omitted, so EMQX applies its own defaults (API.md §3.6).
type EvacuationRequest struct {
	ConnEvictRate   *int64
	SessEvictRate   *int64
	WaitHealthCheck *time.Duration // sent as whole seconds, rounded up
	WaitTakeover    *time.Duration // sent as whole seconds, rounded up
	RedirectTo      string         // accepted and ignored by EMQX 5.x/6.x REST
	MigrateTo       []string
}

// MarshalJSON encodes only the fields that are set.
func (r EvacuationRequest) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	setInt(m, "conn_evict_rate", r.ConnEvictRate)
	setInt(m, "sess_evict_rate", r.SessEvictRate)
	setSeconds(m, "wait_health_check", r.WaitHealthCheck)
	setSeconds(m, "wait_takeover", r.WaitTakeover)
	if r.RedirectTo != "" {
		m["redirect_to"] = r.RedirectTo
	}
	if len(r.MigrateTo) > 0 {
		m["migrate_to"] = r.MigrateTo
	}
	return json.Marshal(m)
}

// Validate rejects values EMQX would reject, before anything is sent.
func (r EvacuationRequest) Validate() error {
	if err := positive("conn_evict_rate", r.ConnEvictRate); err != nil {
		return err
	}
	if err := positive("sess_evict_rate", r.SessEvictRate); err != nil {
		return err
	}
	if err := secondsInRange("wait_health_check", r.WaitHealthCheck); err != nil {
		return err
	}
	return secondsInRange("wait_takeover", r.WaitTakeover)
}

// RebalanceRequest is the body of POST /load_rebalance/{node}/start (API.md §3.8).
type RebalanceRequest struct {
	Nodes               []string
	ConnEvictRate       *int64
	SessEvictRate       *int64
	ConnEvictRPCTimeout *time.Duration // sent as milliseconds (EMQX 5.9+)
	SessEvictRPCTimeout *time.Duration // sent as milliseconds (EMQX 5.9+)
	WaitHealthCheck     *time.Duration
	WaitTakeover        *time.Duration
	AbsConnThreshold    *int64
	RelConnThreshold    *float64 // must be > 1.0
	AbsSessThreshold    *int64
	RelSessThreshold    *float64 // must be > 1.0
}

// MarshalJSON encodes only the fields that are set.
func (r RebalanceRequest) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if len(r.Nodes) > 0 {
		m["nodes"] = r.Nodes
	}
	setInt(m, "conn_evict_rate", r.ConnEvictRate)
	setInt(m, "sess_evict_rate", r.SessEvictRate)
	if r.ConnEvictRPCTimeout != nil {
		m["conn_evict_rpc_timeout"] = r.ConnEvictRPCTimeout.Milliseconds()
	}
	if r.SessEvictRPCTimeout != nil {
		m["sess_evict_rpc_timeout"] = r.SessEvictRPCTimeout.Milliseconds()
	}
	setSeconds(m, "wait_health_check", r.WaitHealthCheck)
	setSeconds(m, "wait_takeover", r.WaitTakeover)
	setInt(m, "abs_conn_threshold", r.AbsConnThreshold)
	setInt(m, "abs_sess_threshold", r.AbsSessThreshold)
	if r.RelConnThreshold != nil {
		m["rel_conn_threshold"] = *r.RelConnThreshold
	}
	if r.RelSessThreshold != nil {
		m["rel_sess_threshold"] = *r.RelSessThreshold
	}
	return json.Marshal(m)
}

// Validate rejects values EMQX would reject, before anything is sent.
func (r RebalanceRequest) Validate() error {
	for name, v := range map[string]*int64{
		"conn_evict_rate": r.ConnEvictRate, "sess_evict_rate": r.SessEvictRate,
		"abs_conn_threshold": r.AbsConnThreshold, "abs_sess_threshold": r.AbsSessThreshold,
	} {
		if err := positive(name, v); err != nil {
			return err
		}
	}
	for name, v := range map[string]*float64{
		"rel_conn_threshold": r.RelConnThreshold,
		"rel_sess_threshold": r.RelSessThreshold,
	} {
		if v != nil && !(*v > 1.0) {
			return fmt.Errorf("%s must be greater than 1.0, got %v", name, *v)
		}
	}
	for name, v := range map[string]*time.Duration{
		"wait_health_check": r.WaitHealthCheck,
		"wait_takeover":     r.WaitTakeover,
	} {
		if err := secondsInRange(name, v); err != nil {
			return err
		}
	}
	for name, v := range map[string]*time.Duration{
		"conn_evict_rpc_timeout": r.ConnEvictRPCTimeout,
		"sess_evict_rpc_timeout": r.SessEvictRPCTimeout,
	} {
		if v != nil && (*v < 0 || v.Milliseconds() > math.MaxUint32) {
			return fmt.Errorf("%s must be between 0 and %dms, got %v", name, uint32(math.MaxUint32), *v)
		}
	}
	return nil
}

// MaxWaitSeconds is the largest wait_health_check/wait_takeover EMQX accepts.
const MaxWaitSeconds = 4294967

func setInt(m map[string]any, key string, v *int64) {
	if v != nil {
		m[key] = *v
	}
}

func setSeconds(m map[string]any, key string, d *time.Duration) {
	if d != nil {
		m[key] = ceilSeconds(*d)
	}
}

// ceilSeconds rounds a duration up to whole seconds, as EMQX does with duration strings.
func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

func positive(name string, v *int64) error {
	if v != nil && *v < 1 {
		return fmt.Errorf("%s must be at least 1, got %d", name, *v)
	}
	return nil
}

func secondsInRange(name string, d *time.Duration) error {
	if d != nil && (*d < 0 || ceilSeconds(*d) > MaxWaitSeconds) {
		return fmt.Errorf("%s must be between 0s and %ds, got %v", name, MaxWaitSeconds, *d)
	}
	return nil
}
