package emqxsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Durable storage (builtin_raft, 5.9+ with durable sessions on): each core node is a site; each
// DB's shards are replicated on a set of sites, which PUT /ds/storages/{db}/replicas changes one
// raft membership step at a time (apps/emqx_management/src/emqx_mgmt_api_ds.erl,
// apps/emqx_ds_builtin_raft/src/emqx_ds_builtin_raft_meta.erl). Simplifications: a DB is
// allocated once, on the core sites up when the first /ds request or core arrives (n_sites = 1,
// EMQX's default, means usually the first core alone); a membership step takes dsStepTime; site IDs
// are derived from the node name, so a pod that comes back with the same name is the same site.

// dsDBs are the durable storages served; dsShards and dsReplicationFactor are EMQX's defaults
// (emqx_ds_schema.erl: n_shards 16, replication_factor 3).
var dsDBs = []string{"messages", "sessions"}

const (
	dsShards            = 16
	dsReplicationFactor = 3
	dsStepTime          = time.Second
)

type dsShard struct {
	id       string
	replicas []string // current replica set (site IDs)
	target   []string // nil: no transition under way
}

type storage struct {
	sites     map[string]string // site ID → node name
	forgotten map[string]bool
	dbs       map[string][]*dsShard // nil until allocated
}

// dsEnabled: the /ds API answers (durable storage is active).
func (c *Cluster) dsEnabled() bool { return c.durable() && c.version.HasDurableStorage() }

func siteOf(node string) string {
	h := sha256.Sum256([]byte(node))
	return strings.ToUpper(hex.EncodeToString(h[:8]))
}

// dsJoin registers a core node's site. Caller holds mu.
func (c *Cluster) dsJoin(n *Node) {
	if !c.dsEnabled() || n.role != "core" {
		return
	}
	if c.ds.sites == nil {
		c.ds.sites, c.ds.forgotten = map[string]string{}, map[string]bool{}
	}
	site := siteOf(n.name)
	c.ds.sites[site] = n.name
	delete(c.ds.forgotten, site)
	c.dsAllocate()
}

// dsAllocate places every DB's shards on the sites up now, once.
func (c *Cluster) dsAllocate() {
	if c.ds.dbs != nil {
		return
	}
	var up []string
	for site := range c.ds.sites {
		if c.siteStatus(site) == "up" {
			up = append(up, site)
		}
	}
	if len(up) == 0 {
		return
	}
	sort.Strings(up)
	c.ds.dbs = map[string][]*dsShard{}
	for _, db := range dsDBs {
		for i := range dsShards {
			var set []string
			for k := range min(dsReplicationFactor, len(up)) {
				set = append(set, up[(i+k)%len(up)])
			}
			sort.Strings(set)
			c.ds.dbs[db] = append(c.ds.dbs[db], &dsShard{id: strconv.Itoa(i), replicas: set})
		}
	}
	c.after(dsStepTime, c.dsStep)
}

// siteStatus is up, down (its node is stopped but a member) or lost (its node left the cluster).
func (c *Cluster) siteStatus(site string) string {
	n := c.node(c.ds.sites[site])
	switch {
	case n != nil && n.running:
		return "up"
	case n != nil && c.known[n.name]:
		return "down"
	}
	return "lost"
}

// dsStep moves every shard in transition one membership change closer to its target: first a
// joining site, then a leaving one. A change needs the joining site up.
func (c *Cluster) dsStep() {
	for _, db := range dsDBs {
		for _, sh := range c.ds.dbs[db] {
			if sh.target == nil {
				continue
			}
			if add := missing(sh.target, sh.replicas); len(add) > 0 {
				if c.siteStatus(add[0]) == "up" {
					sh.replicas = sortedWith(sh.replicas, add[0])
				}
			} else if del := missing(sh.replicas, sh.target); len(del) > 0 {
				sh.replicas = slices.DeleteFunc(sh.replicas, func(s string) bool { return s == del[0] })
			}
			if slices.Equal(sh.replicas, sh.target) {
				sh.target = nil
			}
		}
	}
	c.after(dsStepTime, c.dsStep)
}

// missing is what a holds that b does not, in a's order.
func missing(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func sortedWith(set []string, s string) []string {
	out := append(slices.Clone(set), s)
	sort.Strings(out)
	return out
}

// dsReplicasDown counts shard replicas on sites whose node is not up: redundancy the cluster has
// lost (for good once the node has left). A simulator-only figure.
func (c *Cluster) dsReplicasDown() int64 {
	var n int64
	for _, db := range dsDBs {
		for _, sh := range c.ds.dbs[db] {
			for _, s := range sh.replicas {
				if c.siteStatus(s) != "up" {
					n++
				}
			}
		}
	}
	return n
}

// serveDS answers /api/v5/ds/... (p without the /api/v5 prefix).
func (c *Cluster) serveDS(w http.ResponseWriter, r *http.Request, p string, raw []byte) {
	if !c.dsEnabled() {
		writeError(w, r, &apiError{http.StatusNotFound, "NOT_FOUND", "Durable storage is disabled"})
		return
	}
	c.dsAllocate()
	parts := strings.Split(strings.TrimPrefix(p, "/ds/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "sites":
		sites := []string{}
		for s := range c.ds.sites {
			if !c.ds.forgotten[s] {
				sites = append(sites, s)
			}
		}
		sort.Strings(sites)
		writeJSON(w, http.StatusOK, sites)
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "sites":
		c.serveSite(w, r, parts[1])
	case r.Method == http.MethodPut && len(parts) == 3 && parts[0] == "sites" && parts[2] == "forget" &&
		c.version.ForgetsSites():
		c.forgetSite(w, r, parts[1])
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "storages":
		writeJSON(w, http.StatusOK, dsDBs)
	case len(parts) >= 2 && parts[0] == "storages":
		shards, ok := c.ds.dbs[parts[1]]
		if !ok && !slices.Contains(dsDBs, parts[1]) {
			writeError(
				w,
				r,
				&apiError{http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("DB '%s' does not exist", parts[1])},
			)
			return
		}
		switch {
		case r.Method == http.MethodGet && len(parts) == 2:
			writeJSON(w, http.StatusOK, c.storageDoc(parts[1], shards))
		case r.Method == http.MethodGet && len(parts) == 3 && parts[2] == "replicas":
			writeJSON(w, http.StatusOK, dbSites(shards))
		case r.Method == http.MethodPut && len(parts) == 3 && parts[2] == "replicas":
			c.assignSites(w, r, shards, raw)
		default:
			notFound(w, r)
		}
	default:
		notFound(w, r)
	}
}

func (c *Cluster) serveSite(w http.ResponseWriter, r *http.Request, site string) {
	node, ok := c.ds.sites[site]
	if !ok || c.ds.forgotten[site] {
		writeError(w, r, &apiError{http.StatusNotFound, "NOT_FOUND", "Site not found: " + site})
		return
	}
	shards := []map[string]any{}
	for _, db := range dsDBs {
		for _, sh := range c.ds.dbs[db] {
			in, target := slices.Contains(sh.replicas, site), sh.target != nil && slices.Contains(sh.target, site)
			switch {
			case in && sh.target != nil && !target:
				shards = append(
					shards,
					map[string]any{"storage": db, "id": sh.id, "status": c.siteStatus(site), "transition": "leaving"},
				)
			case in:
				shards = append(shards, map[string]any{"storage": db, "id": sh.id, "status": c.siteStatus(site)})
			case target:
				shards = append(shards, map[string]any{"storage": db, "id": sh.id, "transition": "joining"})
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": node, "up": c.siteStatus(site) == "up", "shards": shards})
}

// forgetSite follows emqx_ds_builtin_raft_meta:forget_site/1: only the site of a node that left
// the cluster (lost), and only when it holds no replica and is in no transition.
func (c *Cluster) forgetSite(w http.ResponseWriter, r *http.Request, site string) {
	if _, ok := c.ds.sites[site]; !ok || c.ds.forgotten[site] {
		writeError(w, r, &apiError{http.StatusNotFound, "NOT_FOUND", "Site not found: " + site})
		return
	}
	switch c.siteStatus(site) {
	case "up":
		writeError(w, r, badRequest("site_up"))
		return
	case "down":
		writeError(w, r, badRequest("site_temporarily_down"))
		return
	}
	var dbs []string
	for _, db := range dsDBs {
		for _, sh := range c.ds.dbs[db] {
			if slices.Contains(sh.replicas, site) || slices.Contains(sh.target, site) {
				dbs = append(dbs, db)
				break
			}
		}
	}
	if len(dbs) > 0 {
		writeError(w, r, badRequest(fmt.Sprintf("{member_of_replica_sets,[%s]}", strings.Join(dbs, ","))))
		return
	}
	c.ds.forgotten[site] = true
	w.WriteHeader(http.StatusNoContent)
}

func (c *Cluster) storageDoc(db string, shards []*dsShard) map[string]any {
	out := []map[string]any{}
	for _, sh := range shards {
		doc := map[string]any{"id": sh.id}
		replicas := []map[string]string{}
		for _, s := range sh.replicas {
			replicas = append(replicas, map[string]string{"site": s, "status": c.siteStatus(s)})
		}
		doc["replicas"] = replicas
		if sh.target != nil {
			var tr []map[string]string
			for _, s := range missing(sh.target, sh.replicas) {
				tr = append(tr, map[string]string{"site": s, "transition": "joining"})
			}
			for _, s := range missing(sh.replicas, sh.target) {
				tr = append(tr, map[string]string{"site": s, "transition": "leaving"})
			}
			doc["transitions"] = tr
		}
		out = append(out, doc)
	}
	return map[string]any{"name": db, "shards": out}
}

// dbSites is every site that holds or will hold a replica of the DB.
func dbSites(shards []*dsShard) []string {
	set := map[string]bool{}
	for _, sh := range shards {
		for _, s := range sh.replicas {
			set[s] = true
		}
		for _, s := range sh.target {
			set[s] = true
		}
	}
	out := []string{}
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// assignSites is PUT /ds/storages/{db}/replicas (assign_db_sites): the DB's shards are spread over
// the given sites, each shard on min(replication factor, sites) of them, keeping the replicas it
// has there. Every site must be known and not lost.
func (c *Cluster) assignSites(w http.ResponseWriter, r *http.Request, shards []*dsShard, raw []byte) {
	var sites []string
	if err := json.Unmarshal(raw, &sites); err != nil {
		writeError(w, r, badRequest("Bad type"))
		return
	}
	if len(sites) == 0 {
		writeError(w, r, badRequest("{need_at_least_one_site}"))
		return
	}
	for _, s := range sites {
		if _, ok := c.ds.sites[s]; !ok || c.ds.forgotten[s] || c.siteStatus(s) == "lost" {
			writeError(w, r, badRequest(fmt.Sprintf("{nonexistent_sites,[%s]}", s)))
			return
		}
	}
	sort.Strings(sites)
	load := map[string]int{}
	for i, sh := range shards {
		want := min(dsReplicationFactor, len(sites))
		var keep []string
		for _, s := range sh.replicas {
			if slices.Contains(sites, s) && len(keep) < want {
				keep = append(keep, s)
			}
		}
		// The least loaded sites first, from a shard-dependent start.
		k := i % len(sites)
		cand := append(slices.Clone(sites[k:]), sites[:k]...)
		sort.SliceStable(cand, func(a, b int) bool { return load[cand[a]] < load[cand[b]] })
		for _, s := range cand {
			if len(keep) < want && !slices.Contains(keep, s) {
				keep = append(keep, s)
			}
		}
		for _, s := range keep {
			load[s]++
		}
		sort.Strings(keep)
		if !slices.Equal(keep, sh.replicas) {
			sh.target = keep
		}
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`"OK"`))
}
