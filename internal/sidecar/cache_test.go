package sidecar

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

func TestCacheRevisionsAreMonotonic(t *testing.T) {
	bind := func(url string, rev int64) registry.Binding {
		b := greeterBinding(url)
		b.Revision = rev
		return b
	}
	type step struct {
		bindings   []registry.Binding
		unresolved []registry.Unresolved
		want       map[string]int64 // name -> local revision (bound or unbound)
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "unchanged content keeps its revision even when the control plane's grows",
			steps: []step{
				{bindings: []registry.Binding{bind("http://a", 5)}, want: map[string]int64{"greeter": 5}},
				{bindings: []registry.Binding{bind("http://a", 9)}, want: map[string]int64{"greeter": 5}},
			},
		},
		{
			name: "changed content takes the incoming revision when it is higher",
			steps: []step{
				{bindings: []registry.Binding{bind("http://a", 5)}, want: map[string]int64{"greeter": 5}},
				{bindings: []registry.Binding{bind("http://b", 9)}, want: map[string]int64{"greeter": 9}},
			},
		},
		{
			name: "a restarted control plane with lower revisions cannot go backwards",
			steps: []step{
				{bindings: []registry.Binding{bind("http://a", 40)}, want: map[string]int64{"greeter": 40}},
				{bindings: []registry.Binding{bind("http://b", 1)}, want: map[string]int64{"greeter": 41}},
				{bindings: []registry.Binding{bind("http://c", 2)}, want: map[string]int64{"greeter": 42}},
			},
		},
		{
			name: "a binding that goes away and comes back continues upwards",
			steps: []step{
				{bindings: []registry.Binding{bind("http://a", 7)}, want: map[string]int64{"greeter": 7}},
				{unresolved: []registry.Unresolved{{Name: "greeter", Selector: "greeter", Reason: "gone"}}, want: map[string]int64{"greeter": 8}},
				{bindings: []registry.Binding{bind("http://a", 1)}, want: map[string]int64{"greeter": 9}},
			},
		},
		{
			name: "a binding absent altogether also continues upwards when it returns",
			steps: []step{
				{bindings: []registry.Binding{bind("http://a", 7)}, want: map[string]int64{"greeter": 7}},
				{want: map[string]int64{}},
				{bindings: []registry.Binding{bind("http://a", 3)}, want: map[string]int64{"greeter": 9}},
			},
		},
		{
			name: "a zero incoming revision still starts at 1",
			steps: []step{
				{bindings: []registry.Binding{bind("http://a", 0)}, want: map[string]int64{"greeter": 1}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache()
			for i, st := range tt.steps {
				snap := c.apply(int64(i+1), "", st.bindings, st.unresolved)
				got := map[string]int64{}
				for name, e := range snap.bindings {
					got[name] = e.binding.Revision
				}
				for name, u := range snap.unresolved {
					got[name] = u.revision
				}
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Errorf("step %d: revisions (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestCacheBroadcastsChanges(t *testing.T) {
	c := newCache()
	first := c.load()
	select {
	case <-first.changed:
		t.Fatal("changed is closed before any apply")
	default:
	}
	next := c.apply(1, "h", []registry.Binding{greeterBinding("http://a")}, nil)
	select {
	case <-first.changed:
	default:
		t.Fatal("apply did not close the previous snapshot's changed channel")
	}
	if got := c.load(); got != next {
		t.Errorf("load() = %p, want the applied snapshot %p", got, next)
	}
	if !next.loaded {
		t.Error("applied snapshot: loaded = false, want true")
	}
}

func TestCacheEncodesBodiesOnce(t *testing.T) {
	c := newCache()
	b := greeterBinding("http://a")
	snap := c.apply(3, "h", []registry.Binding{b}, []registry.Unresolved{{Name: "db", Selector: "postgresql@^15", Reason: "none"}})
	e := snap.bindings["greeter"]
	want := `{"name":"greeter","provider":"greeter-v2","namespace":"team","type":"http","version":"2.0.0","endpoints":[{"url":"http://a","ready":true}],"config":{"greeting":"hello"},"selector":"greeter","revision":1}` + "\n"
	if got := string(e.body); got != want {
		t.Errorf("binding body = %s, want %s", got, want)
	}
	if got, want := e.length[0], strconv.Itoa(len(want)); got != want {
		t.Errorf("Content-Length = %s, want %s", got, want)
	}
	wantList := `{"bindings":[` + want[:len(want)-1] + `],"unresolved":[{"name":"db","selector":"postgresql@^15","reason":"none"}],"version":3}` + "\n"
	if got := string(snap.listBody); got != wantList {
		t.Errorf("list body = %s, want %s", got, wantList)
	}
}
