package evacuation

import (
	"reflect"
	"testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

func db(name string, replicas ...string) emqx.Storage {
	s := emqx.Storage{Name: name, Shards: []emqx.StorageShard{{ID: "0"}}}
	for _, r := range replicas {
		s.Shards[0].Replicas = append(s.Shards[0].Replicas, struct {
			Site   string `json:"site"`
			Status string `json:"status"`
		}{r, "up"})
	}
	return s
}

func TestStorageMovesTakeTheGoingSitesOut(t *testing.T) {
	up := map[string]bool{"a": true, "b": true, "c": true}
	for _, c := range []struct {
		name  string
		dbs   []emqx.Storage
		going map[string]bool
		up    map[string]bool
		want  map[string][]string
		ok    bool
	}{
		{"spread over three, c goes", []emqx.Storage{db("messages", "a", "b", "c"), db("sessions", "a", "b")},
			map[string]bool{"c": true}, up, map[string][]string{"messages": {"a", "b"}}, true},
		{"only on the going site: every site that stays", []emqx.Storage{db("messages", "c")},
			map[string]bool{"c": true}, up, map[string][]string{"messages": {"a", "b"}}, true},
		{"not on the going sites: nothing", []emqx.Storage{db("messages", "a")},
			map[string]bool{"b": true, "c": true}, up, map[string][]string{}, true},
		{"nowhere to go", []emqx.Storage{db("messages", "c")},
			map[string]bool{"c": true}, map[string]bool{"c": true}, nil, false},
	} {
		got, ok := Storage{DBs: c.dbs, Going: c.going, Up: c.up}.Moves()
		if ok != c.ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v %v, want %v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
