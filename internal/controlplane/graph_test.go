package controlplane_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// sidecarCaller is an Authenticator for which every API caller is the
// sidecar of team-a/orders, as a pod token is on Kubernetes: never admin.
type sidecarCaller struct{ controlplane.Trusting }

func (sidecarCaller) Caller(context.Context, *http.Request) (controlplane.Caller, error) {
	return controlplane.Caller{Consumer: registry.Consumer{Namespace: "team-a", Name: "orders"}, Owner: "pod:team-a/orders-1"}, nil
}

// TestExplainEndpoint: POST /v1/explain lists every candidate with its
// rule, agrees with POST /v1/resolve, and answers an unresolved dependency
// with its reason.
func TestExplainEndpoint(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/providers/default/g1", `{"type":"http","version":"1.2.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"secret":{"token":"s3cret"}}`)
	e.do(t, "PUT", "/v1/providers/default/g2", `{"type":"http","version":"2.0.0","endpoints":[{"url":"http://127.0.0.1:9002","ready":true}]}`)
	e.do(t, "PUT", "/v1/providers/default/g3", `{"type":"http","version":"1.5.0","endpoints":[{"url":"http://127.0.0.1:9003","ready":false}]}`)
	e.do(t, "PUT", "/v1/providers/default/g4", `{"type":"http","version":"1.1.0","endpoints":[{"url":"http://127.0.0.1:9004","ready":true}]}`)
	waitRevision(t, e)

	code, body := e.do(t, "POST", "/v1/explain", `{"consumer":{"name":"fn"},"dependency":"greeter=http@^1"}`)
	if code != 200 || strings.Contains(body, "s3cret") {
		t.Fatalf("explain = %d %s, want 200 without secret", code, body)
	}
	var ex controlplane.ExplainResponse
	if err := json.Unmarshal([]byte(body), &ex); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Provider string
		Rule     registry.Rule
		Chosen   bool
	}
	var got []row
	for _, c := range ex.Candidates {
		got = append(got, row{c.Provider, c.Rule, c.Chosen})
	}
	want := []row{
		{"default/g1", registry.RuleHighestVersion, true},
		{"default/g4", registry.RuleHighestVersion, false},
		{"default/g2", registry.RuleVersion, false},
		{"default/g3", registry.RuleReadiness, false},
	}
	if diff := cmp.Diff(want, got); diff != "" || ex.Chosen != "default/g1" || ex.Revision == 0 {
		t.Errorf("explain greeter=http@^1 (-want +got):\n%s chosen %q revision %d", diff, ex.Chosen, ex.Revision)
	}
	_, rbody := e.do(t, "POST", "/v1/resolve", `{"consumer":{"name":"fn"},"dependency":"greeter=http@^1"}`)
	if !strings.Contains(rbody, `"provider":"g1"`) {
		t.Errorf("resolve = %s, explain chose %s", rbody, ex.Chosen)
	}

	code, body = e.do(t, "POST", "/v1/explain", `{"consumer":{"name":"fn"},"dependency":"db=postgresql@^15"}`)
	if code != 200 || !strings.Contains(body, `"unresolved":"no provider has type postgresql"`) {
		t.Errorf("explain unresolved = %d %s, want 200 with the reason", code, body)
	}
	code, body = e.do(t, "POST", "/v1/explain", `{"consumer":{"name":"fn"},"dependency":"db=postgresql@^^15"}`)
	if code != 400 || !strings.Contains(body, `"field":"dependency"`) {
		t.Errorf("explain bad range = %d %s, want 400 on field dependency", code, body)
	}
}

// TestExplainAsSidecar: a sidecar explains only for its own function and
// does not see other namespaces' providers that were not exported to it.
func TestExplainAsSidecar(t *testing.T) {
	e := newEnvWith(t, func(o *controlplane.Options) { o.Auth = sidecarCaller{} })
	e.do(t, "PUT", "/v1/providers/team-a/own", `{"type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}]}`)
	e.do(t, "PUT", "/v1/providers/team-b/exported", `{"type":"http","version":"2.0.0","scope":{"namespaces":["team-a"]},"endpoints":[{"url":"http://127.0.0.1:9002","ready":true}]}`)
	e.do(t, "PUT", "/v1/providers/team-c/secret-name", `{"type":"http","version":"3.0.0","endpoints":[{"url":"http://127.0.0.1:9003","ready":true}]}`)
	waitRevision(t, e)
	code, body := e.do(t, "POST", "/v1/explain", `{"consumer":{"name":"billing","namespace":"team-a"},"dependency":"g=*/http@*"}`)
	if code != 403 {
		t.Errorf("explain for another function = %d %s, want 403", code, body)
	}
	code, body = e.do(t, "POST", "/v1/explain", `{"dependency":"g=*/http@*"}`)
	if code != 200 || strings.Contains(body, "secret-name") || !strings.Contains(body, `"hidden":1`) ||
		!strings.Contains(body, `"chosen":"team-b/exported"`) || !strings.Contains(body, "team-a/own") {
		t.Errorf("explain as sidecar = %d %s, want team-b/exported chosen, team-a/own listed, team-c hidden", code, body)
	}
}

// TestGraph: GET /v1/graph shows connected functions with their sidecars,
// each dependency's provider or reason, and every provider without secret
// values; the event stream sends it again when a provider changes.
func TestGraph(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/providers/default/g1", `{"type":"http","version":"1.2.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"secret":{"token":"s3cret"}}`)
	waitRevision(t, e)
	st := openStream(t, e, protocol.Hello{SidecarID: "sc-1", Consumer: registry.Consumer{Name: "frontend"}, Dependencies: []string{"greeter=http@^1", "db=postgresql@^15"}})
	st.next(t)

	code, body := e.do(t, "GET", "/v1/graph", "")
	if code != 200 || strings.Contains(body, "s3cret") {
		t.Fatalf("GET /v1/graph = %d %s, want 200 without secret", code, body)
	}
	var g controlplane.Graph
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Functions) != 1 || len(g.Providers) != 1 {
		t.Fatalf("graph = %s, want one function and one provider", body)
	}
	f := g.Functions[0]
	wantDeps := []controlplane.GraphDependency{
		{Alias: "db", Selector: "postgresql@^15", Unresolved: "no provider has type postgresql"},
		{Alias: "greeter", Selector: "http@^1", Provider: "default/g1"},
	}
	if diff := cmp.Diff(wantDeps, f.Dependencies); diff != "" || len(f.Sidecars) != 1 || f.Sidecars[0].ID != "sc-1" {
		t.Errorf("graph function (-want +got):\n%s sidecars %+v", diff, f.Sidecars)
	}
	if p := g.Providers[0]; p.Ready != 1 || len(p.SecretKeys) != 1 {
		t.Errorf("graph provider = %+v, want 1 ready endpoint and secret key names only", p)
	}

	// The event stream: the graph at once, then again after a change.
	req, err := http.NewRequestWithContext(t.Context(), "GET", e.http.URL+"/v1/graph/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("GET /v1/graph/events = %d %s", resp.StatusCode, ct)
	}
	events := make(chan controlplane.Graph, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var g controlplane.Graph
				if json.Unmarshal([]byte(data), &g) == nil {
					events <- g
				}
			}
		}
		close(events)
	}()
	next := func(what string, ok func(controlplane.Graph) bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case g, open := <-events:
				if !open {
					t.Fatalf("event stream ended before %s", what)
				}
				if ok(g) {
					return
				}
			case <-deadline:
				t.Fatalf("no graph event with %s within 5s", what)
			}
		}
	}
	next("the first graph", func(g controlplane.Graph) bool { return len(g.Functions) == 1 })
	start := time.Now()
	e.do(t, "PUT", "/v1/providers/default/pg", `{"type":"postgresql","version":"15.1.0","endpoints":[{"url":"postgres://127.0.0.1:5432/db","ready":true}]}`)
	next("db bound to default/pg", func(g controlplane.Graph) bool {
		return len(g.Functions) == 1 && g.Functions[0].Dependencies[0].Provider == "default/pg"
	})
	if d := time.Since(start); d > time.Second {
		t.Errorf("the graph event for a new provider came after %v, want under 1s", d)
	}
}

// TestGraphAdminOnly: a caller that is not admin (a pod token on
// Kubernetes) gets 403 from the graph, its events and the page.
func TestGraphAdminOnly(t *testing.T) {
	e := newEnvWith(t, func(o *controlplane.Options) { o.Auth = sidecarCaller{} })
	for _, path := range []string{"/v1/graph", "/v1/graph/events", "/dashboard/", "/dashboard/app.js"} {
		code, body := e.do(t, "GET", path, "")
		if code != 403 || !strings.Contains(body, "only admin callers") {
			t.Errorf("GET %s as a sidecar = %d %s, want 403", path, code, body)
		}
	}
}

// TestDashboardPage: the page and its assets come from the binary, with a
// policy that allows nothing from elsewhere.
func TestDashboardPage(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{
		"/dashboard/":            "<title>ddi dependency graph</title>",
		"/dashboard/app.js":      "/v1/graph/events",
		"/dashboard/app.css":     "#details",
		"/dashboard/favicon.svg": "<svg",
	} {
		resp, err := http.Get(e.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(b.String(), want) {
			t.Errorf("GET %s = %d, want 200 containing %q", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s Content-Security-Policy = %q", path, csp)
		}
	}
}
