package controlplane_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// splitTargets sums up the split of a binding as provider:weight/share,
// "-" for an unresolved target, "*" after the primary.
func splitTargets(b registry.Binding) []string {
	var out []string
	for _, st := range b.Split {
		s := st.Provider
		if s == "" {
			s = "-"
		}
		s += ":" + itoa(int64(st.Weight)) + "/" + itoa(int64(st.Share))
		if st.Primary {
			s += "*"
		}
		out = append(out, s)
	}
	return out
}

// TestStreamSplit: a split dependency in a hello gets a binding whose own
// fields are the primary's (with only the primary's secret) and whose split
// lists every target; a canary that appears later moves its share, and an
// edge of the graph carries the shares.
func TestStreamSplit(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/providers/default/greeter-v1", `{"type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"secret":{"token":"one"}}`)
	waitRevision(t, e)
	s := openStream(t, e, protocol.Hello{SidecarID: "sc-1", Consumer: registry.Consumer{Name: "frontend"}, Dependencies: []string{"greeter=90%greeter-v1,10%greeter-v2"}})
	first := s.next(t)
	if len(first.Bindings) != 1 {
		t.Fatalf("first snapshot = %+v, want greeter bound", first)
	}
	b := first.Bindings[0]
	if b.Provider != "greeter-v1" || b.Selector != "90%greeter-v1,10%greeter-v2" || b.Secret["token"] != "one" {
		t.Errorf("binding = %+v, want the primary greeter-v1 with its secret and the whole split as selector", b)
	}
	if diff := cmp.Diff([]string{"greeter-v1:90/100*", "-:10/0"}, splitTargets(b)); diff != "" {
		t.Errorf("split while the canary is missing (-want +got):\n%s", diff)
	}
	if b.Split[1].Unresolved != "no provider named greeter-v2 in namespace default" {
		t.Errorf("unresolved canary reason = %q", b.Split[1].Unresolved)
	}

	e.do(t, "PUT", "/v1/providers/default/greeter-v2", `{"type":"http","version":"2.0.0","endpoints":[{"url":"http://127.0.0.1:9002","ready":true}],"secret":{"token":"two"}}`)
	second := s.next(t)
	b = second.Bindings[0]
	if diff := cmp.Diff([]string{"greeter-v1:90/90*", "greeter-v2:10/10"}, splitTargets(b)); diff != "" {
		t.Errorf("split with the canary (-want +got):\n%s", diff)
	}
	if b.Revision <= first.Bindings[0].Revision {
		t.Errorf("binding revision %d -> %d, want growth when a target resolves", first.Bindings[0].Revision, b.Revision)
	}
	raw, _ := json.Marshal(second)
	if strings.Contains(string(raw), `"two"`) {
		t.Errorf("the snapshot carries the canary's secret: %s", raw)
	}
	if got := b.Split[1].Endpoints; len(got) != 1 || got[0].URL != "http://127.0.0.1:9002" {
		t.Errorf("canary endpoints = %+v", got)
	}

	// The graph: one edge per target, with its share.
	_, body := e.do(t, "GET", "/v1/graph", "")
	var g controlplane.Graph
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatal(err)
	}
	want := []controlplane.GraphDependency{{Alias: "greeter", Selector: "90%greeter-v1,10%greeter-v2", Provider: "default/greeter-v1",
		Split: []controlplane.GraphTarget{{Provider: "default/greeter-v1", Weight: 90, Share: 90}, {Provider: "default/greeter-v2", Weight: 10, Share: 10}}}}
	if len(g.Functions) != 1 {
		t.Fatalf("graph = %s", body)
	}
	if diff := cmp.Diff(want, g.Functions[0].Dependencies); diff != "" {
		t.Errorf("graph edges (-want +got):\n%s", diff)
	}
	_, body = e.do(t, "GET", "/v1/sidecars", "")
	if !strings.Contains(body, `"greeter=90%greeter-v1,10%greeter-v2"`) {
		t.Errorf("sidecars = %s, want the split dependency as declared", body)
	}
}

// TestResolveAndExplainSplit: POST /v1/resolve answers a split with the
// primary and every target; /v1/explain explains each target.
func TestResolveAndExplainSplit(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/providers/default/g1", `{"type":"http","version":"1.2.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}]}`)
	e.do(t, "PUT", "/v1/providers/default/g2", `{"type":"http","version":"2.0.0","endpoints":[{"url":"http://127.0.0.1:9002","ready":true}]}`)
	waitRevision(t, e)
	code, body := e.do(t, "POST", "/v1/resolve", `{"consumer":{"name":"fn"},"dependency":"greeter=25%http@^2,75%http@^1"}`)
	var b registry.Binding
	if err := json.Unmarshal([]byte(body), &b); code != 200 || err != nil {
		t.Fatalf("resolve = %d %s", code, body)
	}
	if diff := cmp.Diff([]string{"g2:25/25", "g1:75/75*"}, splitTargets(b)); diff != "" || b.Provider != "g1" {
		t.Errorf("resolve split: provider %s (-want +got):\n%s", b.Provider, diff)
	}
	code, body = e.do(t, "POST", "/v1/explain", `{"consumer":{"name":"fn"},"dependency":"greeter=25%http@^2,75%http@^1"}`)
	var ex controlplane.ExplainResponse
	if err := json.Unmarshal([]byte(body), &ex); code != 200 || err != nil {
		t.Fatalf("explain = %d %s", code, body)
	}
	if ex.Chosen != "default/g1" || len(ex.Split) != 2 || ex.Split[0].Chosen != "default/g2" || ex.Split[0].Share != 25 || !ex.Split[1].Primary {
		t.Errorf("explain split = %s", body)
	}
	code, body = e.do(t, "POST", "/v1/resolve", `{"consumer":{"name":"fn"},"dependency":"greeter=50%nope,50%nada"}`)
	if code != 404 || !strings.Contains(body, `"selector":"50%nope,50%nada"`) || !strings.Contains(body, "no target of the split") {
		t.Errorf("resolve of an unresolvable split = %d %s, want 404 naming the split", code, body)
	}
}

// TestSplitBadInput: every malformed split is a 400 problem naming the
// field and the target, on the resolve and explain API and in a stream
// hello; nothing is stored.
func TestSplitBadInput(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/providers/default/keep", goodProvider)
	waitRevision(t, e)
	before, beforeRev, _ := e.store.List(t.Context())
	tests := []struct {
		name, dep string
		want      string
	}{
		{name: "weights not adding up to 100", dep: "g=90%a,20%b", want: "the weights add up to 110, not 100"},
		{name: "negative weight", dep: "g=110%a,-10%b", want: "target 1 weight: 110 is not a whole percentage from 0 to 100"},
		{name: "missing selector", dep: "g=90%a,10%", want: "target 2 selector: is missing"},
		{name: "duplicate target", dep: "g=50%a,50%a", want: `target 2 selector: \"a\" repeats target 1`},
		{name: "missing weight", dep: "g=a,10%b", want: "target 1 weight: is missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v1/resolve", "/v1/explain"} {
				code, body := e.do(t, "POST", path, `{"consumer":{"name":"fn"},"dependency":"`+tc.dep+`"}`)
				if code != 400 || !strings.Contains(body, `"field":"dependency"`) || !strings.Contains(body, tc.want) {
					t.Errorf("POST %s %s = %d %s, want 400 on field dependency saying %q", path, tc.dep, code, body, tc.want)
				}
			}
			code, body := e.do(t, "POST", protocol.StreamPath, `{"sidecarID":"a","consumer":{"name":"fn"},"dependencies":["`+tc.dep+`"]}`)
			if code != 400 || !strings.Contains(body, tc.want) || !strings.Contains(body, `"field":"dependencies"`) {
				t.Errorf("stream hello %s = %d %s, want 400 on field dependencies saying %q", tc.dep, code, body, tc.want)
			}
		})
	}
	after, afterRev, _ := e.store.List(t.Context())
	if afterRev != beforeRev || len(after) != len(before) {
		t.Errorf("store changed by bad input: revision %d -> %d", beforeRev, afterRev)
	}
}
