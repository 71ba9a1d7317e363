// Package webhooktest is the webhook's test world: a StatefulSet of Ready EMQX pods in a fake
// API server, one simulated EMQX node per pod (pkg/emqxsim, served over HTTP), a fake clock, an
// Event recorder and the executor over them. The gate's, the admission handlers' and the
// controllers' tests each build what they test on it, so each package's tests read alone.
//
// It is for tests only. It may import pkg/ packages, webhook/decide, webhook/observe and
// webhook/effects; never the gate, the handlers or the controllers, whose tests import it.
package webhooktest
