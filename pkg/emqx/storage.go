package emqx

import (
	"context"
	"net/http"
	"net/url"
	"sort"
)

// Durable storage (builtin_raft, 5.9+ with durable sessions on; API.md "Durable storage"): every
// core node is a site holding replicas of the durable DBs' shards. The /ds endpoints answer 404
// when durable storage is not active.

// Site is GET /ds/sites/{site}: a site, its node and the shard replicas it holds or will hold.
type Site struct {
	Node   string      `json:"node"`
	Up     bool        `json:"up"`
	Shards []SiteShard `json:"shards"`
}

// SiteShard is one shard replica of a site; Transition is "joining" or "leaving" while it moves.
type SiteShard struct {
	Storage    string `json:"storage"`
	ID         string `json:"id"`
	Status     string `json:"status,omitempty"`
	Transition string `json:"transition,omitempty"`
}

// Storage is GET /ds/storages/{db}: the DB's shards and where their replicas are.
type Storage struct {
	Name   string         `json:"name"`
	Shards []StorageShard `json:"shards"`
}

// StorageShard is one shard: its replica set and the membership changes under way.
type StorageShard struct {
	ID       string `json:"id"`
	Replicas []struct {
		Site   string `json:"site"`
		Status string `json:"status"`
	} `json:"replicas"`
	Transitions []struct {
		Site       string `json:"site"`
		Transition string `json:"transition"`
	} `json:"transitions,omitempty"`
}

// Sites lists every durable-storage site, lost ones included until they are forgotten.
func (c *Client) Sites(ctx context.Context) ([]string, error) {
	var out []string
	err := c.get(ctx, "/ds/sites", &out)
	return out, err
}

// Site describes one site.
func (c *Client) Site(ctx context.Context, id string) (Site, error) {
	var s Site
	err := c.get(ctx, "/ds/sites/"+url.PathEscape(id), &s)
	return s, err
}

// Storages lists the durable DBs.
func (c *Client) Storages(ctx context.Context) ([]string, error) {
	var out []string
	err := c.get(ctx, "/ds/storages", &out)
	return out, err
}

// Storage describes one durable DB.
func (c *Client) Storage(ctx context.Context, db string) (Storage, error) {
	var s Storage
	err := c.get(ctx, "/ds/storages/"+url.PathEscape(db), &s)
	return s, err
}

// SetReplicaSites asks EMQX to keep db's replicas on these sites only (answered 202: the shards
// then move one membership change at a time).
func (c *Client) SetReplicaSites(ctx context.Context, db string, sites []string) error {
	return c.do(ctx, http.MethodPut, "/ds/storages/"+url.PathEscape(db)+"/replicas", sites, nil, false)
}

// ForgetSite drops a site whose node left the cluster and that holds nothing (6.0+).
func (c *Client) ForgetSite(ctx context.Context, site string) error {
	return c.do(ctx, http.MethodPut, "/ds/sites/"+url.PathEscape(site)+"/forget", nil, nil, false)
}

// TargetSites is every site that holds or joins a replica of the DB, less those leaving: the
// replica set EMQX works towards.
func (s Storage) TargetSites() []string {
	set := map[string]bool{}
	for _, sh := range s.Shards {
		for _, r := range sh.Replicas {
			set[r.Site] = true
		}
	}
	for _, sh := range s.Shards {
		for _, t := range sh.Transitions {
			set[t.Site] = t.Transition == TransitionJoining
		}
	}
	var out []string
	for site, in := range set {
		if in {
			out = append(out, site)
		}
	}
	sort.Strings(out)
	return out
}

// Transition values of a shard replica that moves.
const (
	TransitionJoining = "joining"
	TransitionLeaving = "leaving"
)
