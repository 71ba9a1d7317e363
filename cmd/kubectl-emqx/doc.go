// Command kubectl-emqx is the kubectl plugin `kubectl emqx`.
package main
