package effects

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// StartTimes remembers, in memory, the first time this replica saw a pod enter a timed state (an
// evacuation, an API failure, a concurrency wait). Annotations carry that time across replicas and
// restarts; this copy keeps the clock running when an annotation write fails, so a failed write
// never stretches a hold. The zero value is ready to use.
type StartTimes struct {
	mu   sync.Mutex
	seen map[markKey]time.Time
}

type markKey struct {
	pod types.UID
	key string
}

// startTTL: a start time older than this is forgotten (its pod is long gone, or its hold long over).
const startTTL = 48 * time.Hour

// FirstSeen returns the remembered time of (pod, key), remembering now when there is none.
func (m *StartTimes) FirstSeen(pod types.UID, key string, now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[markKey]time.Time{}
	}
	k := markKey{pod, key}
	if t, ok := m.seen[k]; ok {
		return t
	}
	for old, t := range m.seen {
		if now.Sub(t) > startTTL {
			delete(m.seen, old)
		}
	}
	m.seen[k] = now
	return now
}

// Forget drops the remembered time of (pod, key): the state it timed has ended.
func (m *StartTimes) Forget(pod types.UID, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seen, markKey{pod, key})
}

// Peek returns the remembered time of (pod, key), if any, remembering nothing.
func (m *StartTimes) Peek(pod types.UID, key string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.seen[markKey{pod, key}]
	return t, ok
}
