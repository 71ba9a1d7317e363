// Package simcli is the command line of emqx-sim: a simulated EMQX cluster whose node i serves its
// REST API on PORT+i.
//
// It may import the simulator and its follow mode, never the plugin or the webhook.
package simcli
