// Package status builds the report of `kubectl emqx status`: one row per EMQX pod or node with
// its load and evacuation/rebalance role, cluster totals and the running rebalance.
//
// It is pure: pkg/emqx, pkg/cluster and pkg/evacuation in, a report out; no client, no clock.
package status
