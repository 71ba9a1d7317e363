package controller

import (
	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/effects"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// Env is what the controllers work with, injected once by webhook/app: where they read (the
// cache, EMQX through observe), the only writer, the clock and the webhook's settings. The gate
// gets the same values, so both see one cache, one set of EMQX connections and one memory of
// timed states.
type Env struct {
	Matcher cluster.Matcher      // which pods and StatefulSets are EMQX
	Client  client.Client        // cached reads (writes go through Exec)
	Kube    kubernetes.Interface // uncached reads of the ConfigMaps and Secrets a pod's environment names
	EMQX    observe.Connector
	Exec    *effects.Executor
	Clock   clock.PassiveClock
	Config  decide.Config
	Log     logr.Logger
}
