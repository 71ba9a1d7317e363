package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Rejected remembers the credentials EMQX refused, per cluster, so that a program that connects
// again and again (the webhook, at every retried removal) never repeats a refused login: from 5.9,
// five failed logins in five minutes lock the dashboard user for ten, the humans who share it
// included. A refusal holds until the credentials change (a new Secret or ConfigMap value is
// another fingerprint, tried at once); a LOGIN_LOCKED refusal holds for EMQX's lock duration. Only
// fingerprints are kept (SHA-256 of the cluster and the credentials), never a secret. The zero
// value is ready to use; Clock nil is the real clock.
type Rejected struct {
	Clock clock.PassiveClock

	mu   sync.Mutex
	seen map[string]map[string]refusal // cluster → fingerprint of the credentials → refusal
}

// maxRefusalsPerCluster bounds what one cluster's changing credentials leave behind: the oldest
// refusals beyond it are forgotten (at worst such a credential is tried once more).
const maxRefusalsPerCluster = 16

type refusal struct {
	code  string
	until time.Time // zero: until the credentials change
	at    time.Time
}

// refused returns EMQX's code for an earlier refusal of creds by cluster, or "" when they may be tried.
func (r *Rejected) refused(cluster string, creds emqx.Credentials) string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.seen[cluster][fingerprint(cluster, creds)]
	if !ok || !f.until.IsZero() && !r.now().Before(f.until) {
		return ""
	}
	return f.code
}

// remember records that cluster refused creds with EMQX's code.
func (r *Rejected) remember(cluster string, creds emqx.Credentials, code string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]map[string]refusal{}
	}
	of := r.seen[cluster]
	if of == nil {
		of = map[string]refusal{}
		r.seen[cluster] = of
	}
	f := refusal{code: code, at: r.now()}
	if code == emqx.CodeLoginLocked {
		f.until = f.at.Add(emqx.LoginLockDuration)
	}
	of[fingerprint(cluster, creds)] = f
	for len(of) > maxRefusalsPerCluster {
		oldest := ""
		for k, v := range of {
			if oldest == "" || v.at.Before(of[oldest].at) {
				oldest = k
			}
		}
		delete(of, oldest)
	}
}

// Prune forgets the refusals of every cluster live does not name (EMQX clusters that are gone).
func (r *Rejected) Prune(live map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.seen {
		if !live[c] {
			delete(r.seen, c)
		}
	}
}

func (r *Rejected) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

func fingerprint(cluster string, c emqx.Credentials) string {
	h := sha256.New()
	for _, s := range []string{cluster, c.APIKey, c.APISecret, c.Username, c.Password} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
