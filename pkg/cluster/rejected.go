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
	seen map[string]refusal
}

type refusal struct {
	code  string
	until time.Time // zero: until the credentials change
}

// refused returns EMQX's code for an earlier refusal of creds by cluster, or "" when they may be tried.
func (r *Rejected) refused(cluster string, creds emqx.Credentials) string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.seen[fingerprint(cluster, creds)]
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
		r.seen = map[string]refusal{}
	}
	f := refusal{code: code}
	if code == emqx.CodeLoginLocked {
		f.until = r.now().Add(emqx.LoginLockDuration)
	}
	r.seen[fingerprint(cluster, creds)] = f
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
