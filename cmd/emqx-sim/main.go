package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim/simcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	var err error
	if len(args) > 0 && args[0] == "follow" {
		var o *simcli.FollowOptions
		if o, err = simcli.ParseFollow(args[1:], os.Stderr); err == nil {
			err = simcli.RunFollow(ctx, o, os.Stderr)
		}
	} else {
		var o *simcli.Options
		if o, err = simcli.Parse(args, os.Stderr); err == nil {
			err = simcli.Run(ctx, o, os.Stdout, os.Stderr)
		}
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(os.Stderr, "emqx-sim:", err)
		return 1
	}
	return 0
}
