// Package ops is the work behind kubectl emqx's verbs, free of cobra and of terminals (stern's
// Config + Run shape): each verb is a Config whose Run reaches EMQX through a Target, waits on an
// injected clock, tells a Reporter what happens as it goes, and returns a result. plugin/ holds
// the flags and prints.
//
// It may import pkg/ packages; never cobra, a terminal or the webhook.
package ops
