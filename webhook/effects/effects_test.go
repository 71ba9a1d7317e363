package effects

import (
	"testing"
	"time"
)

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
