package plugin

import "errors"

// Exit codes of kubectl emqx.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitNotBalanced = 2   // a rebalance ended, and EMQX's own rule says the cluster is not balanced
	ExitInterrupted = 130 // Ctrl-C or SIGTERM; what was started on EMQX goes on, and the message says how to undo it
)

// ExitCode maps a command's outcome to the process exit code.
func ExitCode(err error, interrupted bool) int {
	switch {
	case err == nil:
		return ExitOK
	case interrupted:
		return ExitInterrupted
	case errors.Is(err, ErrNotBalanced):
		return ExitNotBalanced
	}
	return ExitError
}
