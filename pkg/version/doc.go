// Package version carries the release version, stamped at build time with
// -ldflags "-X github.com/kubectl-emqx/kubectl-emqx/pkg/version.Version=v1.2.3".
//
// It imports nothing.
package version
