package evacuation

import (
	"context"
	"fmt"
	"net/http"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// ZoneReader reads EMQX's global zone settings (emqx.Client does).
type ZoneReader interface {
	GlobalZone(ctx context.Context) (emqx.Zone, error)
}

// AskDurability finds how to read the session counts of a cluster whose nodes run version (as
// GET /nodes reports it): before 5.8 sessions are never durable and nothing is asked; from 5.8
// EMQX's global zone says. A refusal to say (403: an API key without the scope "system"; 404) is
// DurableUnknown, judged safely; a failure to reach EMQX is an error.
func AskDurability(ctx context.Context, z ZoneReader, version string) (Durability, error) {
	if !emqx.MayHave(version, emqx.Version.HasDurableSessions) {
		return DurableOff, nil
	}
	zone, err := z.GlobalZone(ctx)
	if emqx.IsHTTPStatus(err, http.StatusForbidden, http.StatusNotFound) {
		return DurableUnknown, nil
	}
	if err != nil {
		return DurableOff, fmt.Errorf("read whether durable sessions are on: %w", err)
	}
	if zone.Durable() {
		return DurableOn, nil
	}
	return DurableOff, nil
}
