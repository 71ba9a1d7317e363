// Package app is the emqx-webhook command, as kubectl's commands are built: Options, their flags
// (AddFlags, pflag, with controller-runtime's zap log flags), Complete (defaults that depend on
// other flags), Validate (a message naming the flag and what to do), and Run, which wires the
// manager: the certificate rotator, the admission handlers, the controllers, the custom metrics
// API. It decides nothing itself; cmd/emqx-webhook only calls it.
//
// It may import every package of the webhook and pkg/; nothing imports it but the main.
package app
