package plugin

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// simClock is the plugin's clock in tests: the simulator's time, which moves only when the plugin
// waits. Each tick the plugin waits for advances the simulator by the tick's interval (a timer or
// After by its duration), then runs the test's hook for what else happens in the world at that
// time. No goroutine and no sleep: a test runs the same way every time, at the speed of its HTTP
// calls, and --timeout is measured on this clock.
type simClock struct {
	sim   *emqxsim.Cluster
	every func(now time.Time) // nil: nothing else happens
}

var _ clock.WithTicker = (*simClock)(nil)

func (c *simClock) Now() time.Time                  { return c.sim.Now() }
func (c *simClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *simClock) Sleep(d time.Duration)           { c.advance(d) }
func (c *simClock) After(d time.Duration) <-chan time.Time {
	return c.advance(d)
}
func (c *simClock) Tick(d time.Duration) <-chan time.Time { return c.advance(d) }
func (c *simClock) NewTimer(d time.Duration) clock.Timer {
	return &simTimer{c: c.advance(d)}
}
func (c *simClock) NewTicker(d time.Duration) clock.Ticker { return &simTicker{clock: c, d: d} }

// advance moves time on by d and returns a channel that has fired.
func (c *simClock) advance(d time.Duration) <-chan time.Time {
	c.sim.Advance(d)
	if c.every != nil {
		c.every(c.Now())
	}
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

type simTicker struct {
	clock *simClock
	d     time.Duration
}

// C is read once per wait: the wait is one interval of simulated time.
func (t *simTicker) C() <-chan time.Time { return t.clock.advance(t.d) }
func (t *simTicker) Stop()               {}

type simTimer struct{ c <-chan time.Time }

func (t *simTimer) C() <-chan time.Time      { return t.c }
func (t *simTimer) Stop() bool               { return false }
func (t *simTimer) Reset(time.Duration) bool { return false }

// TestMain fails the package if a test leaves a goroutine running (a poll that never ended, a
// port-forward left open, a progress renderer not stopped).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
