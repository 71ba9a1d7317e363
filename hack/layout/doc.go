// Package layout checks the module's import graph against the rules each package's doc.go states:
// pure packages import no Kubernetes client and no clock, pkg/ never imports the plugin or the
// webhook, the plugin and the webhook never import each other, and every package has a doc.go.
package layout
