package simcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim/follow"
)

// FollowOptions are the flags of `emqx-sim follow`.
type FollowOptions struct {
	Kubeconfig string
	follow.Options
}

// ParseFollow reads the flags of `emqx-sim follow` (args without the subcommand).
func ParseFollow(args []string, stderr io.Writer) (*FollowOptions, error) {
	o := &FollowOptions{}
	fs := flag.NewFlagSet("emqx-sim follow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var selectors multi
	fs.StringVar(&o.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster to follow")
	fs.StringVar(&o.Namespace, "namespace", "", "namespace to watch (default: all)")
	fs.Var(
		&selectors,
		"selector",
		"label selector of EMQX pods (repeatable; default: the Helm chart's and emqx-operator's)",
	)
	fs.StringVar(&o.NetNS, "netns", "", "network namespace that owns the pod IPs (hack/cluster-up.sh makes \"kemqx\")")
	fs.IntVar(&o.Port, "port", 18083, "dashboard port each node serves on its pod IP")
	fs.StringVar(&o.Admin, "admin", "127.0.0.1:18999", "address of the simulator-only API (/sim/v1)")
	fs.StringVar(
		&o.DataRoot,
		"data-dir",
		"",
		"where nodes keep the data of their persistent volumes (default: a temporary directory)",
	)
	fs.Float64Var(&o.TimeScale, "time-scale", 1, "simulated seconds per real second")
	fs.Func("api-key", "API key KEY:SECRET[:ROLE] every cluster accepts (repeatable)", func(v string) error {
		keys := cluster.ParseBootstrapFile(v)
		if len(keys) != 1 {
			return errors.New("want KEY:SECRET or KEY:SECRET:ROLE")
		}
		o.APIKeys = append(o.APIKeys, emqxsim.APIKey{Key: keys[0].Key, Secret: keys[0].Secret, Role: keys[0].Role})
		return nil
	})
	fs.BoolVar(
		&o.NoOperatorGate,
		"no-operator-gate",
		false,
		"leave emqx-operator's readiness gate apps.emqx.io/on-serving to a real emqx-operator",
	)
	fs.Float64Var(&o.Reconnect.Share, "reconnect-share", 1, "share of evicted clients that reconnect (0..1)")
	fs.DurationVar(
		&o.Reconnect.Delay,
		"reconnect-delay",
		time.Second,
		"simulated delay before evicted clients reconnect",
	)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; every option is a --flag", fs.Arg(0))
	}
	o.Selectors = selectors
	if len(o.Selectors) == 0 {
		o.Selectors = []string{cluster.HelmSelector, cluster.OperatorSelector}
	}
	switch {
	case o.Kubeconfig == "":
		return nil, errors.New("--kubeconfig (or KUBECONFIG) is required: emqx-sim follow watches a cluster's pods")
	case o.TimeScale <= 0:
		return nil, fmt.Errorf("--time-scale must be positive, got %v", o.TimeScale)
	case o.Reconnect.Share < 0 || o.Reconnect.Share > 1:
		return nil, fmt.Errorf("--reconnect-share must be between 0 and 1, got %v", o.Reconnect.Share)
	}
	return o, nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ";") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// RunFollow follows the cluster's EMQX pods until ctx ends.
func RunFollow(ctx context.Context, o *FollowOptions, stderr io.Writer) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", o.Kubeconfig, err)
	}
	if o.DataRoot == "" {
		if o.DataRoot, err = os.MkdirTemp("", "emqx-sim-data-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.DataRoot)
	}
	o.Log = log.New(stderr, "emqx-sim: ", log.LstdFlags).Printf
	return follow.Run(ctx, cfg, o.Options)
}
