package plugin

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// command is a verb's options: Complete takes the arguments, Validate checks the flags, Run works.
type command interface {
	Complete(cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// runE wires a verb's options into cobra.
func runE(o command) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(cmd, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
}

// evictionFlags are EMQX's eviction settings, named after EMQX's own CLI. Only the flags given
// are sent, so EMQX applies its own defaults to the rest.
type evictionFlags struct {
	ConnRate   int64
	SessRate   int64
	WaitHealth time.Duration
	WaitTake   time.Duration

	set map[string]bool // flags given on the command line
}

// add registers the flags; scope says what they apply to in the help ("", "scale-down: ").
func (e *evictionFlags) add(fs *pflag.FlagSet, scope string) {
	e.WaitHealth, e.WaitTake = evacuation.DefaultWait, evacuation.DefaultWait
	fs.Int64Var(
		&e.ConnRate,
		"conn-evict-rate",
		evacuation.DefaultRate,
		scope+"connections disconnected per second on each evicting node",
	)
	fs.Int64Var(
		&e.SessRate,
		"sess-evict-rate",
		evacuation.DefaultRate,
		scope+"sessions migrated per second on each evicting node",
	)
	fs.Var(
		evacuation.WaitValue{D: &e.WaitHealth},
		"wait-health-check",
		scope+"time a node reports unhealthy, still accepting clients, before evicting: seconds as in EMQX (10) "+
			"or a duration (10s)",
	)
	fs.Var(
		evacuation.WaitValue{D: &e.WaitTake},
		"wait-takeover",
		scope+"time left to clients to take their sessions over elsewhere before sessions are migrated: seconds (10) "+
			"or a duration (10s)",
	)
}

// record notes which flags the command line gave.
func (e *evictionFlags) record(cmd *cobra.Command) {
	e.set = map[string]bool{}
	cmd.Flags().Visit(func(f *pflag.Flag) { e.set[f.Name] = true })
}

func (e *evictionFlags) validate() error {
	switch {
	case e.ConnRate < 1 || e.SessRate < 1:
		return errors.New("--conn-evict-rate and --sess-evict-rate must be at least 1")
	case e.WaitHealth < 0 || e.WaitTake < 0:
		return errors.New("--wait-health-check and --wait-takeover cannot be negative")
	}
	return nil
}

// given returns v's address when the flag was given, else nil (EMQX's default applies).
func given[T any](e *evictionFlags, flag string, v *T) *T {
	if e.set[flag] {
		return v
	}
	return nil
}

func (e *evictionFlags) evacuationRequest() emqx.EvacuationRequest {
	return emqx.EvacuationRequest{
		ConnEvictRate: given(
			e,
			"conn-evict-rate",
			&e.ConnRate,
		), SessEvictRate: given(e, "sess-evict-rate", &e.SessRate),
		WaitHealthCheck: given(
			e,
			"wait-health-check",
			&e.WaitHealth,
		), WaitTakeover: given(e, "wait-takeover", &e.WaitTake),
	}
}
