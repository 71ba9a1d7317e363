package observe

import (
	"context"
	"net/http"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Storage reads durable storage for the removal of node's pod: its site and what it holds,
// every site's node and state, and the DBs' replica sets. leaving are the EMQX nodes that go. A
// cluster without durable storage answers 404: nothing to move.
func Storage(ctx context.Context, conn EMQX, node string, leaving map[string]bool) (evacuation.Storage, error) {
	st := evacuation.Storage{Going: map[string]bool{}, Up: map[string]bool{}}
	ids, err := conn.Sites(ctx)
	if emqx.IsHTTPStatus(err, http.StatusNotFound) { // no durable storage
		return st, nil
	}
	if err != nil {
		return st, err
	}
	for _, id := range ids {
		site, err := conn.Site(ctx, id)
		if err != nil {
			return st, err
		}
		if site.Up {
			st.Up[id] = true
		}
		if site.Node == node {
			st.Site, st.Held = id, len(site.Shards)
		}
		if leaving[site.Node] || site.Node == node {
			st.Going[id] = true
		}
	}
	dbs, err := conn.Storages(ctx)
	if err != nil {
		return st, err
	}
	for _, name := range dbs {
		db, err := conn.Storage(ctx, name)
		if err != nil {
			return st, err
		}
		st.DBs = append(st.DBs, db)
	}
	return st, nil
}
