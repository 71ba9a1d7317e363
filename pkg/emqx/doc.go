// Package emqx is a typed client for the EMQX REST API used for node evacuation and cluster
// rebalance: /api/v5/nodes and /api/v5/load_rebalance (EMQX 5.x and 6.x; see API.md).
//
// It imports nothing of this module: the client and the types every other package speaks.
package emqx
