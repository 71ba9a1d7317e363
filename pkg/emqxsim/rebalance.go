package emqxsim

import (
	"errors"
	"fmt"
	"time"
)

var errNothingToBalance = errors.New("nothing_to_balance")

// rpcError is a coordinator crash seen by the REST caller as 503 RPC_ERROR.
type rpcError struct{ reason string }

func (e *rpcError) Error() string { return e.reason }

// Rebalance states (API.md §6.1).
const (
	rebWaitHealthCheck  = "wait_health_check"
	rebEvictingConns    = "evicting_conns"
	rebWaitTakeover     = "wait_takeover"
	rebEvictingSessions = "evicting_sessions"
)

type rebalanceOpts struct {
	nodes              []string // nil: every running node
	connRate, sessRate int64
	connRPC, sessRPC   int64 // milliseconds
	waitHealthCheck    time.Duration
	waitTakeover       time.Duration
	absConn, absSess   int64
	relConn, relSess   float64
}

func defaultRebalanceOpts() rebalanceOpts {
	return rebalanceOpts{
		connRate: defaultRate, sessRate: defaultRate, connRPC: defaultRPCTimeout, sessRPC: defaultRPCTimeout,
		waitHealthCheck: defaultWait, waitTakeover: defaultWait,
		absConn: defaultThreshold, absSess: defaultThreshold, relConn: defaultRelative, relSess: defaultRelative,
	}
}

type donorStart struct{ conns, sessions int64 }

type coordinator struct {
	n          *Node
	opts       rebalanceOpts
	state      string
	donors     []*Node
	recipients []*Node
	initial    map[*Node]donorStart

	connGoal, donorConnAvg *float64
	sessGoal, donorSessAvg *float64
}

// within is EMQX's balance test: v <= goal + abs or v <= goal * rel (API.md §6.2).
func within(v, goal float64, abs int64, rel float64) bool {
	return v <= goal+float64(abs) || v <= goal*rel
}

func mean(nodes []*Node, f func(*Node) int64) float64 {
	if len(nodes) == 0 {
		return 0
	}
	var sum int64
	for _, n := range nodes {
		sum += f(n)
	}
	return float64(sum) / float64(len(nodes))
}

// startRebalance follows API.md §6.2 on coordinator n. participants are already validated.
func (n *Node) startRebalance(o rebalanceOpts, participants []*Node) error {
	if n.coord != nil {
		return errAlreadyStarted
	}
	if participants == nil {
		participants = n.c.running()
	}
	avg := mean(participants, (*Node).live)
	co := &coordinator{n: n, opts: o, initial: map[*Node]donorStart{}}
	for _, p := range participants {
		if float64(p.live()) >= avg {
			co.donors = append(co.donors, p)
		} else {
			co.recipients = append(co.recipients, p)
		}
	}
	if len(co.donors) == 0 || len(co.recipients) == 0 {
		return errNothingToBalance
	}
	dc, rc := mean(co.donors, (*Node).live), mean(co.recipients, (*Node).live)
	ds, rs := mean(co.donors, (*Node).sessions), mean(co.recipients, (*Node).sessions)
	if within(dc, rc, o.absConn, o.relConn) && within(ds, rs, o.absSess, o.relSess) {
		return errNothingToBalance
	}
	for _, d := range co.donors {
		if d.donorOf != nil || d.agentKind != "" && d.agentKind != kindRebalance {
			// A busy donor crashes the coordinator (API.md §3.8): undo what was enabled.
			co.release()
			return &rpcError{
				reason: fmt.Sprintf(
					"{'EXIT',{{bad_results,[{%s,{error,eviction_agent_busy}}]},"+
						"{gen_statem,call,[emqx_node_rebalance,start]}}}",
					erlAtom(d.name),
				),
			}
		}
		_ = d.enableAgent(kindRebalance, true)
		d.donorOf = co
		co.initial[d] = donorStart{conns: d.live(), sessions: d.evictionSessions()}
	}
	n.coord = co
	co.state = rebWaitHealthCheck
	co.after(o.waitHealthCheck, co.beginEvictingConns)
	return nil
}

// stopRebalance is synchronous: donors reopen and the run disappears.
func (n *Node) stopRebalance() error {
	if n.coord == nil {
		return errNotStarted
	}
	n.coord.finish()
	return nil
}

func (co *coordinator) after(d time.Duration, fn func()) {
	n := co.n
	n.c.after(d, func() {
		if n.coord == co {
			fn()
		}
	})
}

// participantsUp is the multicall check: any participant down crashes the coordinator.
func (co *coordinator) participantsUp() bool {
	for _, p := range append(append([]*Node{}, co.donors...), co.recipients...) {
		if !p.running {
			co.crash(fmt.Sprintf("participant %s down", p.name))
			return false
		}
	}
	return true
}

func (co *coordinator) beginEvictingConns() {
	if !co.participantsUp() {
		return
	}
	for _, d := range co.donors {
		_ = d.enableAgent(kindRebalance, false)
	}
	co.state = rebEvictingConns
	co.tickConns()
}

func (co *coordinator) tickConns() {
	if !co.participantsUp() {
		return
	}
	donorAvg, goal := mean(co.donors, (*Node).live), mean(co.recipients, (*Node).live)
	co.donorConnAvg, co.connGoal = &donorAvg, &goal
	if within(donorAvg, goal, co.opts.absConn, co.opts.relConn) {
		co.state = rebWaitTakeover
		co.after(co.opts.waitTakeover, func() {
			co.state = rebEvictingSessions
			co.tickSessions()
		})
		return
	}
	for _, d := range co.donors {
		if float64(d.live()) > goal {
			d.evictConnections(co.opts.connRate)
		}
	}
	co.after(TickInterval, co.tickConns)
}

func (co *coordinator) tickSessions() {
	if !co.participantsUp() {
		return
	}
	donorAvg, goal := mean(co.donors, (*Node).disc), mean(co.recipients, (*Node).disc)
	co.donorSessAvg, co.sessGoal = &donorAvg, &goal
	if within(donorAvg, goal, co.opts.absSess, co.opts.relSess) {
		co.finish()
		return
	}
	for _, d := range co.donors {
		if float64(d.disc()) > goal {
			d.migrateSessions(co.opts.sessRate, co.recipients)
		}
	}
	co.after(TickInterval, co.tickSessions)
}

// finish ends the run normally (or by stop): donors reopen, the coordinator is disabled.
func (co *coordinator) finish() {
	co.release()
	if co.n.coord == co {
		co.n.coord = nil
	}
}

// crash is the supervisor restart of API.md §6.4: same observable end as finish.
func (co *coordinator) crash(reason string) {
	co.n.c.logf("rebalance coordinated by %s aborted: %s", co.n.name, reason)
	co.finish()
}

func (co *coordinator) release() {
	for _, d := range co.donors {
		if d.donorOf == co {
			d.donorOf = nil
			d.disableAgent(kindRebalance)
		}
	}
}
