// Package layout checks the module's import graph against the rules each package's doc.go states:
// pure packages import no Kubernetes client and no clock, pkg/ never imports the plugin or the
// webhook, the plugin and the webhook never import each other, the webhook's packages import only
// what their doc.go allows (decide decides, observe reads, effects writes, admission and the
// controllers call them), only webhook/effects writes, and every package has a doc.go.
package layout
