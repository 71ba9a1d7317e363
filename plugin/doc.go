// Package plugin holds the cobra commands of `kubectl emqx`: each verb's flags (an options struct
// with Complete, Validate and Run) and its printing. The work itself is pkg/ops: Run builds an
// ops Config from the flags, runs it with a reporter that prints as it goes, and prints the result.
//
// It may import pkg/ packages, never the webhook.
package plugin
