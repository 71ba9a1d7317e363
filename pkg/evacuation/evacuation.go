package evacuation

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// EMQX's defaults (API.md §5.2, §6.5).
const (
	DefaultRate      = 500
	DefaultWait      = 60 * time.Second
	DefaultThreshold = 1000
	DefaultRelative  = 1.1
)

// Waits are an evacuation's pauses; EMQX does not report them, so the caller says what it asked
// for (or the defaults).
type Waits struct {
	HealthCheck time.Duration
	Takeover    time.Duration
}

// DefaultWaits are EMQX's.
var DefaultWaits = Waits{HealthCheck: DefaultWait, Takeover: DefaultWait}

// Durability says how to read an evacuation's session count. From 5.8, with durable sessions on,
// EMQX counts every disconnected durable session of the whole cluster in each evacuation
// (emqx_eviction_agent:session_count/0): they live in durable storage, on no node, and nobody can
// evict them, so the count may never reach 0 (API.md "Durable sessions").
type Durability int

// Durability values.
const (
	// DurableOff: EMQX before 5.8, or durable_sessions.enable is false. The count is the node's.
	DurableOff Durability = iota
	// DurableOn: durable_sessions.enable is true. The count adds the cluster's offline durable ones.
	DurableOn
	// DurableUnknown: 5.8 or later and the setting could not be read (an API key without the scope
	// that reads configuration). Judged as DurableOn, which is safe either way.
	DurableUnknown
)

func (d Durability) String() string {
	switch d {
	case DurableOn:
		return "on"
	case DurableUnknown:
		return "unknown"
	}
	return "off"
}

// SafeToRemove is the one rule for "this node holds nothing any more". EMQX's own (API.md §5.4):
// evacuated to prohibiting with no connection and no session left. (emqx-operator 2.x for EMQX 5
// looks at the state alone, sync_pods.go: prohibiting; its counts rule is v1beta4's, for 4.4.) Where
// sessions may be durable that count can stay above 0 for good, and the rule is the node's own
// state: its connections evicted and refused (the evacuation is past evicting_conns), and EMQX's
// live node list shows no connection and no channel on it (GET /nodes: live_connections and
// connections, its channel table). A durable session has no channel once its client is gone: it is
// in durable storage, which the node's removal does not touch. node is the evacuated node as /nodes
// lists it now.
func SafeToRemove(ev emqx.Evacuation, node emqx.Node, d Durability) bool {
	if ev.Done() {
		return true
	}
	if d == DurableOff {
		return false
	}
	return locallyEmpty(ev, node)
}

// locallyEmpty: the evacuation has evicted the node's connections, refuses new ones, and the node
// holds no connection and no channel of its own.
func locallyEmpty(ev emqx.Evacuation, node emqx.Node) bool {
	switch ev.State {
	case emqx.EvacuationWaitingTakeover, emqx.EvacuationEvictingSessions, emqx.EvacuationProhibiting:
	default:
		return false
	}
	return node.Node == ev.Node && node.Running() && ev.Stats.CurrentConnected == 0 &&
		node.LiveConnections == 0 && node.Connections == 0
}

// Remaining estimates the time an evacuation still needs from its state, counts and rates. Counts
// of EMQX's evacuation document are updated only by eviction ticks, so this is an estimate.
// sessions is what is left to move: EMQX's count, or the node's own channels where sessions may
// be durable (see ProgressOf).
func Remaining(ev emqx.Evacuation, sessions int64, w Waits) time.Duration {
	conns := ticks(ev.Stats.CurrentConnected, ev.ConnectionEvictionRate)
	sess := ticks(sessions, ev.SessionEvictionRate)
	switch ev.State {
	case emqx.EvacuationWaitingHealthCheck:
		return w.HealthCheck + conns + w.Takeover + sess
	case emqx.EvacuationEvictingConns:
		return conns + w.Takeover + sess
	case emqx.EvacuationWaitingTakeover:
		return w.Takeover + sess
	case emqx.EvacuationEvictingSessions:
		return sess
	}
	return 0
}

// Estimate is how long an evacuation that req would start takes for a node holding conns live
// connections and sessions sessions: both waits and the eviction ticks at req's rates (EMQX's
// defaults where it names none).
func Estimate(req emqx.EvacuationRequest, conns, sessions int64) time.Duration {
	ev := emqx.Evacuation{State: emqx.EvacuationWaitingHealthCheck, Stats: emqx.Stats{CurrentConnected: conns}}
	if req.ConnEvictRate != nil {
		ev.ConnectionEvictionRate = *req.ConnEvictRate
	}
	if req.SessEvictRate != nil {
		ev.SessionEvictionRate = *req.SessEvictRate
	}
	return Remaining(ev, sessions, WaitsOf(req))
}

func ticks(n, rate int64) time.Duration {
	if n <= 0 {
		return 0
	}
	if rate <= 0 {
		rate = DefaultRate
	}
	return time.Duration(math.Ceil(float64(n)/float64(rate))) * time.Second
}

// RatesWithin returns the connection and session eviction rates that empty a node holding conns
// connections and sessions sessions within d, after the two waits. It fails when the waits alone
// take d.
func RatesWithin(d time.Duration, w Waits, conns, sessions int64) (connRate, sessRate int64, ok bool) {
	budget := d - w.HealthCheck - w.Takeover
	if budget < 2*time.Second {
		return 0, 0, false
	}
	// Split the time between the two phases in proportion to their work, at least a tick each.
	half := max(budget.Seconds()/2, 1)
	connRate = max(1, int64(math.Ceil(float64(conns)/half)))
	sessRate = max(1, int64(math.Ceil(float64(sessions)/half)))
	return connRate, sessRate, true
}

// ParseWait reads a wait as EMQX's API takes it: a whole number of seconds ("10", as in EMQX and
// emqx-operator's waitHealthCheck: 10) or a duration ("10s", "1m", "500ms"). Negative waits and
// anything else are refused with a message saying what is accepted.
func ParseWait(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%q: a wait cannot be negative", s)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > maxWaitSeconds {
			return 0, fmt.Errorf("%q: want 0 to %d seconds", s, maxWaitSeconds)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d > maxWaitSeconds*time.Second {
		return 0, fmt.Errorf("%q: want seconds (10) or a duration (10s, 1m), at most %d s", s, maxWaitSeconds)
	}
	return d, nil
}

// maxWaitSeconds is the largest wait EMQX accepts (API.md §3.1: 0..4294967 s).
const maxWaitSeconds = 4294967

// WaitValue is a pflag value for a wait flag, parsed by ParseWait.
type WaitValue struct{ D *time.Duration }

func (w WaitValue) String() string {
	if w.D == nil {
		return ""
	}
	return w.D.String()
}

// Set implements pflag.Value.
func (w WaitValue) Set(s string) error {
	d, err := ParseWait(s)
	if err != nil {
		return err
	}
	*w.D = d
	return nil
}

// Type implements pflag.Value.
func (WaitValue) Type() string { return "seconds|duration" }

// WaitsOf are the waits an evacuation request makes EMQX take: those it names, EMQX's defaults
// for the others.
func WaitsOf(req emqx.EvacuationRequest) Waits {
	w := DefaultWaits
	if req.WaitHealthCheck != nil {
		w.HealthCheck = *req.WaitHealthCheck
	}
	if req.WaitTakeover != nil {
		w.Takeover = *req.WaitTakeover
	}
	return w
}
