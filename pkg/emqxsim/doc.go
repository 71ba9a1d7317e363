// Package emqxsim simulates an EMQX cluster's node evacuation and rebalance behaviour, as written
// in pkg/emqx/API.md, behind EMQX's own REST API: one HTTP API per node, its state machines
// driven by a virtual clock so tests run in milliseconds and demos run at any speed.
//
// MQTT itself is not simulated: clients are counts. Each connected client has a persistent
// session (clean_start=false with an expiry) or a clean one; a disconnected persistent session
// stays on its node until its client comes back or it is migrated.
//
// It may import pkg/emqx and pkg/evacuation, never the code under test (plugin, webhook).
package emqxsim
