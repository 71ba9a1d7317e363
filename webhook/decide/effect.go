package decide

import (
	"fmt"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Effect is one side effect of a decision, applied by the gate's executor (never in a dry run).
type Effect interface{ effect() }

// Annotate merges annotations into the pod (nil removes) and drops the in-memory marks Forget
// names (a new evacuation restarts its clock).
type Annotate struct {
	Set    map[string]*string
	Forget []string
}

// RecordStart records, in memory and on the pod, that the state timed under Key began at Since.
type RecordStart struct {
	Key   string
	Since time.Time
}

// RememberStart records, in this replica's memory only, that the state timed under Key began at Since.
type RememberStart struct {
	Key   string
	Since time.Time
}

// ForgetStart ends the state timed under Key.
type ForgetStart struct{ Key string }

// Event is an Event on the pod.
type Event struct{ Type, Reason, Message string }

// RecordEvacuated puts the pod in its owner's record of pods removed while evacuated.
type RecordEvacuated struct{}

// ForgetConnection drops the cached connection to the pod's EMQX cluster (it failed).
type ForgetConnection struct{}

func (Annotate) effect()         {}
func (RecordStart) effect()      {}
func (RememberStart) effect()    {}
func (ForgetStart) effect()      {}
func (Event) effect()            {}
func (RecordEvacuated) effect()  {}
func (ForgetConnection) effect() {}

// NewEvent builds an Event effect; EMQX-provided text is escaped and bounded.
func NewEvent(typ, reason, format string, args ...any) Event {
	return Event{Type: typ, Reason: reason, Message: emqx.Printable(fmt.Sprintf(format, args...), MaxMessage)}
}
