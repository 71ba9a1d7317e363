// Command emqx-webhook is the admission webhook that holds evictions, deletions and StatefulSet
// scale-downs of EMQX pods until their node is evacuated, and the controller beside it. The
// command is webhook/app's Options; this only parses and runs them.
package main
