package simcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// Options are the parsed flags.
type Options struct {
	Nodes          int
	Listen         string
	Connections    []int64
	Sessions       []int64
	APIKeys        []emqxsim.APIKey
	NoLogin        bool
	TimeScale      float64
	NameTemplate   string
	Roles          []string
	Version        string
	Edition        string
	ReconnectShare float64
	ReconnectDelay time.Duration
	DataDir        string
	Seed           uint64
}

// DefaultNameTemplate is the Helm chart's node name for release "emqx".
const DefaultNameTemplate = "emqx@emqx-{i}.emqx-headless.default.svc.cluster.local"

// Parse reads args (without the program name).
func Parse(args []string, stderr io.Writer) (*Options, error) {
	o := &Options{}
	fs := flag.NewFlagSet("emqx-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var conns, sess, roles string
	fs.IntVar(&o.Nodes, "nodes", 3, "number of nodes")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:18083", "HOST:PORT of node 0; node i serves on PORT+i")
	fs.StringVar(&conns, "connections", "", "connected clients per node, comma-separated (a,b,…)")
	fs.StringVar(&sess, "sessions", "", "how many of each node's clients hold a persistent session (default: all)")
	fs.Func("api-key", "API key as KEY:SECRET[:ROLE] (repeatable)", func(v string) error {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return errors.New("want KEY:SECRET or KEY:SECRET:ROLE")
		}
		k := emqxsim.APIKey{Key: parts[0], Secret: parts[1]}
		if len(parts) == 3 {
			k.Role = parts[2]
		}
		o.APIKeys = append(o.APIKeys, k)
		return nil
	})
	fs.BoolVar(&o.NoLogin, "no-dashboard-login", false, "refuse the dashboard login admin/public")
	fs.Float64Var(&o.TimeScale, "time-scale", 1, "simulated seconds per real second")
	fs.StringVar(&o.NameTemplate, "name-template", DefaultNameTemplate, "node name; {i} is the node index")
	fs.StringVar(&roles, "roles", "", "role per node, comma-separated core|replicant (default: all core)")
	fs.StringVar(&o.Version, "emqx-version", "5.10.0", "EMQX version to report")
	fs.StringVar(&o.Edition, "edition", "Enterprise", "Enterprise, or Opensource (no rebalance API before 5.9)")
	fs.Float64Var(&o.ReconnectShare, "reconnect-share", 1, "share of evicted clients that reconnect (0..1)")
	fs.DurationVar(
		&o.ReconnectDelay,
		"reconnect-delay",
		time.Second,
		"simulated delay before evicted clients reconnect",
	)
	fs.StringVar(&o.DataDir, "data-dir", "", "directory for the nodes' data (node i uses DIR/i); default in memory")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; every option is a --flag", fs.Arg(0))
	}
	var err error
	if o.Connections, err = intList("--connections", conns, o.Nodes); err != nil {
		return nil, err
	}
	if o.Sessions, err = intList("--sessions", sess, o.Nodes); err != nil {
		return nil, err
	}
	if roles != "" {
		o.Roles = strings.Split(roles, ",")
		if len(o.Roles) != o.Nodes {
			return nil, fmt.Errorf("--roles has %d entries for %d nodes", len(o.Roles), o.Nodes)
		}
	}
	return o, o.validate()
}

func (o *Options) validate() error {
	switch {
	case o.Nodes < 1:
		return fmt.Errorf("--nodes must be at least 1, got %d", o.Nodes)
	case o.TimeScale <= 0:
		return fmt.Errorf("--time-scale must be positive, got %v", o.TimeScale)
	case o.ReconnectShare < 0 || o.ReconnectShare > 1:
		return fmt.Errorf("--reconnect-share must be between 0 and 1, got %v", o.ReconnectShare)
	case !strings.Contains(o.NameTemplate, "{i}") && o.Nodes > 1:
		return fmt.Errorf("--name-template %q has no {i}: every node would get the same name", o.NameTemplate)
	}
	for i := range o.Sessions {
		if o.Connections == nil || o.Sessions[i] > o.Connections[i] {
			return fmt.Errorf("--sessions: node %d cannot hold more sessions than connections", i)
		}
	}
	_, _, err := o.addr(0)
	return err
}

func intList(flagName, v string, n int) ([]int64, error) {
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("%s has %d values for %d nodes", flagName, len(parts), n)
	}
	out := make([]int64, n)
	for i, p := range parts {
		x, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || x < 0 {
			return nil, fmt.Errorf("%s: %q is not a count", flagName, p)
		}
		out[i] = x
	}
	return out, nil
}

func (o *Options) addr(i int) (string, int, error) {
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return "", 0, fmt.Errorf("--listen %q: want HOST:PORT: %w", o.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+o.Nodes-1 > 65535 {
		return "", 0, fmt.Errorf("--listen %q: port out of range for %d nodes", o.Listen, o.Nodes)
	}
	if p == 0 {
		return net.JoinHostPort(host, "0"), 0, nil
	}
	return net.JoinHostPort(host, strconv.Itoa(p+i)), p + i, nil
}

// Config turns the options into a cluster configuration.
func (o *Options) Config(logf func(string, ...any)) emqxsim.Config {
	cfg := emqxsim.Config{
		APIKeys: o.APIKeys, NoLogin: o.NoLogin, Version: o.Version, Edition: o.Edition, Seed: o.Seed,
		Reconnect: emqxsim.ReconnectConfig{Share: o.ReconnectShare, Delay: o.ReconnectDelay}, Log: logf,
	}
	for i := range o.Nodes {
		nc := emqxsim.NodeConfig{Name: strings.ReplaceAll(o.NameTemplate, "{i}", strconv.Itoa(i)), Sessions: -1}
		if o.Connections != nil {
			nc.Connections = o.Connections[i]
		}
		if o.Sessions != nil {
			nc.Sessions = o.Sessions[i]
		}
		if o.Roles != nil {
			nc.Role = o.Roles[i]
		}
		if o.DataDir != "" {
			nc.DataDir = filepath.Join(o.DataDir, strconv.Itoa(i))
		}
		cfg.Nodes = append(cfg.Nodes, nc)
	}
	return cfg
}

// Run starts the cluster, prints "NODE URL" per node to stdout, and serves until ctx ends.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	logger := log.New(stderr, "emqx-sim: ", log.LstdFlags)
	cfg := o.Config(logger.Printf)
	cluster, err := emqxsim.New(cfg)
	if err != nil {
		return err
	}
	srv := emqxsim.NewServer(cluster)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	for i, nc := range cfg.Nodes {
		addr, _, err := o.addr(i)
		if err != nil {
			return err
		}
		bound, err := srv.Listen(nc.Name, addr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s http://%s\n", nc.Name, bound)
	}
	cluster.Run(ctx, clock.RealClock{}, o.TimeScale, 20*time.Millisecond)
	return nil
}
