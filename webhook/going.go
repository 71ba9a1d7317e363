package webhook

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// goingFor is how long a pod this replica let go counts as going while the cache does not show it
// terminating yet (milliseconds, normally). An eviction the API server refuses after the webhook
// (a PodDisruptionBudget's) leaves the pod running: its node takes sessions again after this.
const goingFor = 10 * time.Second

// goingPods remembers the EMQX pods this replica let go a moment ago, by UID: until their deletion
// shows in the cache, an evacuation must not send sessions to their nodes (they stop with them).
type goingPods struct {
	mu sync.Mutex
	at map[types.UID]time.Time
}

// mark remembers that the pod uid was let go at now, and forgets what is older than goingFor.
func (g *goingPods) mark(uid types.UID, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.at == nil {
		g.at = map[types.UID]time.Time{}
	}
	for k, t := range g.at {
		if now.Sub(t) >= goingFor {
			delete(g.at, k)
		}
	}
	g.at[uid] = now
}

// recent reports whether the pod uid was let go less than goingFor before now.
func (g *goingPods) recent(uid types.UID, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.at[uid]
	return ok && now.Sub(t) < goingFor
}

// LetGoRecently reports whether this replica let the EMQX pod uid go less than goingFor ago: the
// controller's automatic rebalance waits while such a pod still runs (Membership.LetGo).
func (g *Gate) LetGoRecently(uid types.UID) bool { return g.going.recent(uid, g.Clock.Now()) }
