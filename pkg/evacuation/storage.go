package evacuation

import (
	"slices"
	"sort"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Storage is what durable storage (5.9+, builtin_raft) says about core nodes that leave for good:
// a core is a site holding shard replicas, and removing it before they move loses redundancy, or
// data with a replication factor of 1. emqx-operator 2.3 moves a core's replicas away and waits
// until its site holds none before it removes the pod; the webhook does the same for a
// scale-down's victims.
type Storage struct {
	Site string // the leaving node's site, "" when it has none (no durable storage, a replicant)
	// Held is how many shard replicas the site holds or is joining: 0 means it may go.
	Held int
	DBs  []emqx.Storage
	// Going are the sites of every node that goes with it (its own included); Up the sites whose
	// node is up.
	Going, Up map[string]bool
}

// Moves are the replica sets to ask for, per DB, so that no replica stays on a going site: EMQX's
// current targets less the going sites, or every site up that stays when that leaves none. A DB
// already moving away from the going sites needs nothing. ok is false when no site can take them.
func (s Storage) Moves() (moves map[string][]string, ok bool) {
	var stay []string
	for site := range s.Up {
		if !s.Going[site] {
			stay = append(stay, site)
		}
	}
	sort.Strings(stay)
	moves = map[string][]string{}
	for _, db := range s.DBs {
		targets := db.TargetSites()
		keep := slices.DeleteFunc(slices.Clone(targets), func(site string) bool { return s.Going[site] })
		if len(keep) == len(targets) {
			continue
		}
		if len(keep) == 0 {
			keep = stay
		}
		if len(keep) == 0 {
			return nil, false
		}
		moves[db.Name] = keep
	}
	return moves, true
}
