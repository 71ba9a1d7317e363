package emqx

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// sharedReads lets the GETs of one client that arrive together share one answer: a GET of a path
// asked less than maxAge ago (by the client's clock) is answered from that answer, and GETs of a
// path in flight wait for it instead of asking again. Any other request (a start, a stop) ends
// every shared answer, and an answer asked before it is never kept after it: nothing is shared
// across a write. Failures are shared only with the requests that waited for them.
type sharedReads struct {
	maxAge time.Duration
	flight singleflight.Group

	mu      sync.Mutex
	gen     uint64 // one more at each write
	answers map[string]sharedAnswer
}

type sharedAnswer struct {
	at   time.Time
	gen  uint64
	body []byte // the decoded answer, encoded again: each caller decodes its own copy
}

// WithSharedReads makes GETs that arrive within maxAge of each other share one answer (see
// sharedReads): EMQX then sees a cluster's reads once per maxAge, not once per caller, when many
// decisions about it arrive together. The age is read on the client's clock (WithClock).
func WithSharedReads(maxAge time.Duration) Option {
	return func(c *Client) {
		if maxAge > 0 {
			c.shared = &sharedReads{maxAge: maxAge, answers: map[string]sharedAnswer{}}
		}
	}
}

// sharedGet answers a GET of path into out from a recent answer, or asks once for every caller.
func (c *Client) sharedGet(ctx context.Context, path string, out any) error {
	s := c.shared
	s.mu.Lock()
	a, ok := s.answers[path]
	gen := s.gen
	s.mu.Unlock()
	if ok && a.gen == gen && c.clock.Since(a.at) < s.maxAge {
		return c.decodeShared(path, a.body, out)
	}
	// Keyed by the writes seen: a read asked after a write never joins one asked before it.
	v, err, _ := s.flight.Do(strconv.FormatUint(gen, 10)+" "+path, func() (any, error) {
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodGet, path, nil, &raw, true); err != nil {
			return nil, err
		}
		s.mu.Lock()
		// Kept with the writes it saw: after another write it is never used.
		s.answers[path] = sharedAnswer{at: c.clock.Now(), gen: gen, body: raw}
		s.mu.Unlock()
		return []byte(raw), nil
	})
	if err != nil {
		return err
	}
	return c.decodeShared(path, v.([]byte), out)
}

func (c *Client) decodeShared(path string, body []byte, out any) error {
	if err := json.Unmarshal(body, out); err != nil {
		return &DecodeError{Method: http.MethodGet, Path: c.prefix + path, Err: err}
	}
	return nil
}

type freshKey struct{}

// Fresh marks the reads made with ctx as needing EMQX's answer now: a client that shares reads
// (WithSharedReads) asks EMQX for them instead of answering from a recent answer.
func Fresh(ctx context.Context) context.Context { return context.WithValue(ctx, freshKey{}, true) }

// IsFresh reports whether ctx asks for fresh reads (Fresh).
func IsFresh(ctx context.Context) bool { return ctx.Value(freshKey{}) != nil }

// wrote ends every shared answer: a write may have changed what they say.
func (s *sharedReads) wrote() {
	s.mu.Lock()
	s.gen++
	clear(s.answers)
	s.mu.Unlock()
}
