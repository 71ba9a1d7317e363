package emqxsim

import (
	"container/heap"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Timing constants of EMQX (API.md §5.2, §6.3).
const (
	TickInterval      = time.Second      // evict_interval and the evacuation tick
	NoTargetRetry     = 30 * time.Second // evacuation retry when no node can take sessions
	DefaultTokenTTL   = 60 * time.Minute // dashboard.token_expired_time
	defaultRate       = 500
	defaultWait       = 60 * time.Second
	defaultThreshold  = 1000
	defaultRelative   = 1.1
	defaultRPCTimeout = 15000
)

// NodeConfig describes one simulated node.
type NodeConfig struct {
	Name string
	Role string // "core" (default) or "replicant"
	// Connections is how many clients are connected at start; Sessions of them hold a persistent
	// session (all of them when Sessions < 0).
	Connections int64
	Sessions    int64
	// DataDir, when set, holds the evacuation persistence file on disk. Otherwise the node's data
	// lives in memory and survives a Restart with keepData.
	DataDir string
}

// ReconnectConfig says what evicted or cut-off clients do.
type ReconnectConfig struct {
	Share float64       // share of disconnected clients that come back (0..1)
	Delay time.Duration // how long after their disconnect
}

// Config describes a simulated cluster.
type Config struct {
	Nodes []NodeConfig
	// Version is the EMQX release played (5.3.2, 5.8.4, 6.2.2; default 5.10.0): what changed between
	// releases changes with it (emqx.Version says what, and since when).
	Version string
	// DurableSessions is durable_sessions.enable (EMQX_DURABLE_SESSIONS__ENABLE), honoured from 5.8:
	// persistent sessions live in durable storage once their client is gone, and the evacuation's
	// session count adds every disconnected durable session of the cluster.
	DurableSessions bool
	// Hardened is EMQX_SECURITY_PROFILE=hardened, honoured from 6.2.1: the dashboard refuses the
	// default password "public" (and binds to loopback unless told otherwise: see follow).
	Hardened bool
	// MFA lists dashboard users with multi-factor authentication: a login without a token is
	// refused (BAD_MFA_TOKEN).
	MFA []string
	// Edition "Opensource" with a Version before 5.9 serves no load_rebalance routes, as CE did.
	Edition   string
	APIKeys   []APIKey
	Users     map[string]string // dashboard users; nil means admin/public
	NoLogin   bool              // disable dashboard login entirely
	Reconnect ReconnectConfig
	Seed      uint64
	TokenTTL  time.Duration
	Start     time.Time // virtual time at start; default time.Now()
	Log       func(format string, args ...any)
}

// APIKey is a bootstrap API key.
type APIKey struct {
	Key, Secret string
	Role        string // administrator (default), viewer, publisher
	// Scopes (5.10.4+, 6.1.2+, 6.2.1+): nil is unrestricted; otherwise the key reaches /nodes,
	// /load_rebalance and /node_eviction only with "cluster_operations" among them.
	Scopes []string
}

// DefaultReconnect: every evicted client comes back a second later.
var DefaultReconnect = ReconnectConfig{Share: 1, Delay: time.Second}

// Cluster is the simulated cluster. All state sits behind one mutex; the event queue runs on a
// virtual clock advanced by Advance (tests) or Run (real time, scaled).
type Cluster struct {
	mu      sync.Mutex
	cfg     Config
	now     time.Time
	start   time.Time
	events  eventQueue
	seq     uint64
	nodes   []*Node
	byName  map[string]*Node
	known   map[string]bool
	rng     *rand.Rand
	tokens  map[string]token // bearer tokens from /login
	lost    int64
	pending int64  // clients waiting to reconnect
	refused int64  // connects a Ready but refusing node turned away (CONNACK 0x9C)
	config  string // the configuration as HOCON ("" until first read: the boot configuration)
	apiDown bool   // the dashboard listener is unreachable: /api/v5 requests get no answer
	// mostMoving is the most evacuations that were moving clients at one time (an observation
	// for tests: what a limit on concurrent evacuations must keep low).
	mostMoving int

	version emqx.Version
	// Durable sessions (5.8+ with DurableSessions): disconnected ones live in durable storage, on no
	// node. durableTally is the bookkeeper's count of them, refreshed every durableTallyInterval.
	durableOffline, durableTally int64
	// The dashboard's login lock (5.9+): failed logins per user, and until when a user is locked.
	failedLogins map[string][]time.Time
	lockedUntil  map[string]time.Time
	ds           storage // durable storage (5.9+ with durable sessions)
}

// token is a dashboard login's bearer token: whose, and until when.
type token struct {
	user    string
	expires time.Time
}

// durableTallyInterval is durable_sessions.disconnected_session_count_refresh_interval's default.
const durableTallyInterval = 5 * time.Second

// The dashboard's login lock (dashboard.unsuccessful_login_*, 5.9+): this many failed logins within
// the interval lock the user for the duration.
const (
	loginMaxAttempts = 5
	loginInterval    = 5 * time.Minute
)

// New builds a cluster from cfg with every node running.
func New(cfg Config) (*Cluster, error) {
	if cfg.Version == "" {
		cfg.Version = "5.10.0"
	}
	if cfg.Edition == "" {
		cfg.Edition = "Enterprise"
	}
	if cfg.Users == nil && !cfg.NoLogin {
		cfg.Users = map[string]string{"admin": "public"}
	}
	cfg.Users = maps.Clone(cfg.Users) // passwords change through the API, not in the caller's map
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	v, err := emqx.ParseVersion(cfg.Version)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg: cfg, now: cfg.Start, start: cfg.Start, version: v,
		byName: map[string]*Node{}, known: map[string]bool{}, tokens: map[string]token{},
		rng:          rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		failedLogins: map[string][]time.Time{}, lockedUntil: map[string]time.Time{},
	}
	if c.durable() {
		c.after(durableTallyInterval, c.tallyDurable)
	}
	for _, nc := range cfg.Nodes {
		if _, err := c.addNodeLocked(nc); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// AddNode adds a running node (a scale-up).
func (c *Cluster) AddNode(nc NodeConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.addNodeLocked(nc)
	return err
}

func (c *Cluster) addNodeLocked(nc NodeConfig) (*Node, error) {
	if nc.Name == "" {
		return nil, fmt.Errorf("node %d has no name", len(c.nodes))
	}
	if _, dup := c.byName[nc.Name]; dup {
		return nil, fmt.Errorf("node %q is defined twice", nc.Name)
	}
	if nc.Role == "" {
		nc.Role = "core"
	}
	if nc.Role != "core" && nc.Role != "replicant" {
		return nil, fmt.Errorf("node %q: role %q is neither core nor replicant", nc.Name, nc.Role)
	}
	if nc.Connections < 0 || nc.Sessions > nc.Connections {
		return nil, fmt.Errorf(
			"node %q: %d connections with %d sessions is impossible",
			nc.Name,
			nc.Connections,
			nc.Sessions,
		)
	}
	n := &Node{c: c, name: nc.Name, role: nc.Role, ready: true, data: newDataStore(nc.DataDir)}
	c.nodes = append(c.nodes, n)
	c.byName[n.name] = n
	c.known[n.name] = true
	n.boot()
	c.dsJoin(n)
	persistent := nc.Sessions
	if persistent < 0 {
		persistent = nc.Connections
	}
	n.livePersistent, n.liveClean = persistent, nc.Connections-persistent
	return n, nil
}

// durable: persistent sessions are durable ones (durable_sessions.enable on a release that has it).
func (c *Cluster) durable() bool { return c.cfg.DurableSessions && c.version.HasDurableSessions() }

// tallyDurable is emqx_persistent_session_bookkeeper's periodic count of the cluster's disconnected
// durable sessions: the evacuation reads this figure, not a live one.
func (c *Cluster) tallyDurable() {
	c.durableTally = c.durableOffline
	c.after(durableTallyInterval, c.tallyDurable)
}

// Now returns the virtual time.
func (c *Cluster) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves virtual time forward by d, running every event due on the way, in order.
func (c *Cluster) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked(c.now.Add(d))
}

func (c *Cluster) advanceLocked(until time.Time) {
	for c.events.Len() > 0 && !c.events[0].at.After(until) {
		ev := heap.Pop(&c.events).(*event)
		if ev.at.After(c.now) {
			c.now = ev.at
		}
		ev.fn()
	}
	if until.After(c.now) {
		c.now = until
	}
}

// Run advances virtual time with the real clock, scale virtual seconds per real second, until
// ctx ends. step is how often it wakes up.
func (c *Cluster) Run(ctx context.Context, clk clock.WithTicker, scale float64, step time.Duration) {
	t := clk.NewTicker(step)
	defer t.Stop()
	last := clk.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			now := clk.Now()
			c.Advance(time.Duration(float64(now.Sub(last)) * scale))
			last = now
		}
	}
}

// after schedules fn at now+d. Caller holds mu.
func (c *Cluster) after(d time.Duration, fn func()) {
	c.seq++
	heap.Push(&c.events, &event{at: c.now.Add(d), seq: c.seq, fn: fn})
}

// node returns a node by name, or nil. Caller holds mu.
func (c *Cluster) node(name string) *Node { return c.byName[name] }

// running returns the running nodes in configuration order. Caller holds mu.
func (c *Cluster) running() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n.running {
			out = append(out, n)
		}
	}
	return out
}

// endpoints returns the nodes the listener Service sends clients to: those whose pod runs and is
// Ready, refusing or not. Caller holds mu.
func (c *Cluster) endpoints() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n.endpoint() {
			out = append(out, n)
		}
	}
	return out
}

// LostSessions is how many persistent sessions died with a stopped node.
func (c *Cluster) LostSessions() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	ev := old[len(old)-1]
	*q = old[:len(old)-1]
	return ev
}
