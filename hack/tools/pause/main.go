// Command pause is the local node's pod sandbox process: it holds the pod's namespaces and exits
// on SIGTERM or SIGINT, as Kubernetes' pause does. hack/node-up.sh builds it into an image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
