package webhook

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

// A failed annotation write does not restart the clock: the unreachable grace still ends.
func TestFailedWritesDoNotStretchTheUnreachableGrace(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.FailWrites(func(client.Object) bool { return true })
	f.Conn.Down = true
	expect(t, f.removal(0), false, decide.ReasonUnreachable, "held for up to")
	f.Clock.Step(f.gate.Config.UnreachableGrace / 2)
	expect(t, f.removal(0), false, decide.ReasonUnreachable, "held for up to")
	f.Clock.Step(f.gate.Config.UnreachableGrace / 2)
	expect(t, f.removal(0), true, decide.ReasonUnreachable, "has failed for 1m0s")
}

// Nor does it stretch the evacuation time limit of an evacuation the webhook found running.
func TestFailedWritesDoNotStretchTheEvacuationTimeLimit(t *testing.T) {
	f := newFixture(t, 100, 100)
	rate := int64(1)
	conn, _ := f.Conn.Connect(context.Background(), f.Pod(1))
	if err := conn.StartEvacuation(context.Background(), node(0), emqx.EvacuationRequest{
		ConnEvictRate: &rate,
		SessEvictRate: &rate,
	}); err != nil {
		t.Fatal(err)
	}
	f.FailWrites(func(client.Object) bool { return true })
	expect(t, f.removal(0), false, decide.ReasonEvacuating, "is evacuating")
	f.Clock.Step(f.gate.Config.EvacuationTimeout)
	expect(t, f.removal(0), true, decide.ReasonTimedOut, "past its limit")
}

// A time in the future on the pod (a clock ahead, a hand edit) is not trusted: the clock runs from
// when the webhook first saw the state.
func TestFutureTimestampIsCountedFromWhenFirstSeen(t *testing.T) {
	f := newFixture(t, 100, 100)
	p := f.Pod(0)
	p.Annotations = map[string]string{
		decide.AnnUnreachableSince: f.Clock.Now().Add(100 * time.Hour).Format(time.RFC3339Nano),
	}
	f.Update(p)
	f.Conn.Down = true
	expect(t, f.removal(0), false, decide.ReasonUnreachable, "held for up to")
	f.Clock.Step(f.gate.Config.UnreachableGrace)
	expect(t, f.removal(0), true, decide.ReasonUnreachable, "removing the pod without evacuation")
}

// A decision that never asked EMQX (it timed out waiting for the cluster's lock) does not clear
// an API failure recorded earlier; an answer from EMQX does.
func TestOnlyAnAnswerFromEMQXClearsTheUnreachableMark(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.Conn.Down = true
	f.removal(0)
	since := f.Pod(0).Annotations[decide.AnnUnreachableSince]
	if since == "" {
		t.Fatal("no unreachable mark")
	}
	unlock, _ := f.gate.lock(context.Background(), f.Pod(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	expect(t, f.gate.removal(ctx, f.Pod(0), false, "delete", nil, nil), false, decide.ReasonWaiting, "another decision")
	unlock()
	if got := f.Pod(0).Annotations[decide.AnnUnreachableSince]; got != since {
		t.Fatalf("mark %q after a decision that never asked EMQX, want %q", got, since)
	}
	f.Conn.Down = false
	f.removal(0)
	if got := f.Pod(0).Annotations[decide.AnnUnreachableSince]; got != "" {
		t.Fatalf("mark %q after EMQX answered", got)
	}
}

// waiting-since goes as soon as the wait is over, whatever ended it.
func TestWaitingMarkIsClearedWhenTheWaitEnds(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	f.removal(0) // evacuating emqx-0: emqx-1 must wait
	expect(t, f.removal(1), false, decide.ReasonWaiting, "will be evacuated once")
	if f.Pod(1).Annotations[decide.AnnWaitingSince] == "" {
		t.Fatal("no waiting mark")
	}
	p := f.Pod(1)
	p.Annotations[decide.AnnBypass] = "true"
	f.Update(p)
	expect(t, f.removal(1), true, decide.ReasonBypass, "")
	if got := f.Pod(1).Annotations[decide.AnnWaitingSince]; got != "" {
		t.Fatalf("waiting mark %q left after the wait ended", got)
	}
}

func TestPerStatefulSetTimeLimitIsCapped(t *testing.T) {
	f := newFixture(t, 100)
	f.Sts.Annotations = map[string]string{decide.AnnTimeout: "1000h"}
	if got := f.gate.Config.For(f.Sts).Timeout; got != decide.MaxEvacuationTimeout {
		t.Fatalf("timeout %v, want the cap %v", got, decide.MaxEvacuationTimeout)
	}
}
