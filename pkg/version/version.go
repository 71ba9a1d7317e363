// Package version carries the release version, stamped at build time with
// -ldflags "-X github.com/kubectl-emqx/kubectl-emqx/pkg/version.Version=v1.2.3".
package version

// Version is "dev" in builds that were not stamped.
var Version = "dev"
