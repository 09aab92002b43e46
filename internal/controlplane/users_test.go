package controlplane_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"ddi.dev/ddi/internal/controlplane"
)

// userCaller is an Authenticator for which every API caller is the user
// name, allowed exactly the accesses in grants (key Access.String()), as
// a person's RBAC is on Kubernetes. Writes are allowed so that tests can
// set providers up; podauth refuses users' writes (TestUsersThroughKubeconfig).
type userCaller struct {
	controlplane.Trusting
	name   string
	grants map[string]bool
	fail   bool
}

func (u userCaller) Caller(context.Context, *http.Request) (controlplane.Caller, error) {
	return controlplane.Caller{User: u.name, Allowed: func(_ context.Context, a controlplane.Access) (bool, error) {
		if u.fail {
			return false, errors.New("connection refused")
		}
		// As RBAC: a grant in every namespace covers each one.
		every := a
		every.Namespace, every.Name = "", ""
		return u.grants[a.String()] || u.grants[every.String()], nil
	}}, nil
}

// TestUserRoutes: a user reads what their RBAC grants, route by route,
// and is refused everything else with a message naming the permission.
func TestUserRoutes(t *testing.T) {
	teamA := userCaller{name: "alice", grants: map[string]bool{
		"list providers.ddi.dev in namespace team-a":    true,
		"get providers.ddi.dev own in namespace team-a": true,
	}}
	admin := userCaller{name: "root", grants: map[string]bool{
		"list providers.ddi.dev in every namespace":      true,
		"list dependencysets.ddi.dev in every namespace": true,
		"list pods in every namespace":                   true,
	}}
	setup := func(t *testing.T, u userCaller) *env {
		e := newEnvWith(t, func(o *controlplane.Options) { o.Auth = u })
		e.do(t, "PUT", "/v1/providers/team-a/own", `{"type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"secret":{"token":"s3cret"}}`)
		e.do(t, "PUT", "/v1/providers/team-b/exported", `{"type":"http","version":"2.0.0","scope":{"namespaces":["team-a"]},"endpoints":[{"url":"http://127.0.0.1:9002","ready":true}]}`)
		e.do(t, "PUT", "/v1/providers/team-c/secret-name", `{"type":"http","version":"3.0.0","endpoints":[{"url":"http://127.0.0.1:9003","ready":true}]}`)
		waitRevision(t, e)
		return e
	}
	type call struct {
		method, path, body string
		code               int
		has, lacks         []string
	}
	explainA := `{"consumer":{"name":"billing","namespace":"team-a"},"dependency":"g=*/http@*"}`
	tests := []struct {
		name  string
		user  userCaller
		calls []call
	}{
		{
			name: "namespace reader",
			user: teamA,
			calls: []call{
				{method: "GET", path: "/v1/providers?namespace=team-a", code: 200, has: []string{"team-a"}, lacks: []string{"team-b", "team-c", "s3cret"}},
				{method: "GET", path: "/v1/providers", code: 403, has: []string{"alice may not list providers.ddi.dev in every namespace"}},
				{method: "GET", path: "/v1/providers?namespace=team-c", code: 403, has: []string{"alice may not list providers.ddi.dev in namespace team-c"}, lacks: []string{"secret-name"}},
				{method: "GET", path: "/v1/providers?namespace=Bad_NS", code: 400, has: []string{"namespace"}},
				{method: "GET", path: "/v1/providers/team-a/own", code: 200, has: []string{`"name":"own"`}, lacks: []string{"s3cret"}},
				{method: "GET", path: "/v1/providers/team-c/secret-name", code: 403, lacks: []string{"9003"}},
				{method: "POST", path: "/v1/explain", body: explainA, code: 200,
					has: []string{`"chosen":"team-b/exported"`, "team-a/own", `"hidden":1`}, lacks: []string{"secret-name", "s3cret"}},
				{method: "POST", path: "/v1/explain", body: `{"consumer":{"name":"x","namespace":"team-c"},"dependency":"g=http@*"}`, code: 403},
				{method: "POST", path: "/v1/resolve", body: explainA, code: 200, has: []string{"team-b"}, lacks: []string{"s3cret"}},
				{method: "POST", path: "/v1/resolve", body: `{"consumer":{"name":"x","namespace":"team-c"},"dependency":"g=http@*"}`, code: 403},
				{method: "GET", path: "/v1/graph", code: 403, has: []string{"alice may not list providers.ddi.dev in every namespace"}},
				{method: "GET", path: "/v1/graph/events", code: 403},
				{method: "GET", path: "/dashboard/", code: 403},
				{method: "GET", path: "/dashboard/app.js", code: 403},
				{method: "GET", path: "/v1/sidecars", code: 403, has: []string{"list pods in every namespace"}},
				{method: "GET", path: "/v1/version", code: 200},
				{method: "POST", path: "/v1/ack", body: `{"sidecarID":"x","stream":"t","version":1}`, code: 403, has: []string{"only a sidecar"}},
			},
		},
		{
			name: "cluster reader",
			user: admin,
			calls: []call{
				{method: "GET", path: "/v1/providers", code: 200, has: []string{"team-a", "team-b", "team-c"}, lacks: []string{"s3cret"}},
				{method: "POST", path: "/v1/explain", body: explainA, code: 200, has: []string{"team-c/secret-name"}, lacks: []string{`"hidden"`, "s3cret"}},
				{method: "GET", path: "/v1/graph", code: 200, has: []string{"team-c"}, lacks: []string{"s3cret"}},
				{method: "GET", path: "/dashboard/", code: 200, has: []string{"<title>ddi dependency graph</title>"}},
				{method: "GET", path: "/v1/sidecars", code: 200, has: []string{`"sidecars"`}},
				// A provider's get needs get, not list.
				{method: "GET", path: "/v1/providers/team-a/own", code: 403, has: []string{"get providers.ddi.dev own in namespace team-a"}},
			},
		},
		{
			name: "API server unreachable",
			user: userCaller{name: "alice", fail: true},
			calls: []call{
				{method: "GET", path: "/v1/providers?namespace=team-a", code: 503, has: []string{"could not ask the Kubernetes API server", "retry"}},
				{method: "GET", path: "/v1/graph", code: 503},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, tt.user)
			for _, c := range tt.calls {
				code, body := e.do(t, c.method, c.path, c.body)
				if code != c.code {
					t.Errorf("%s %s as %s = %d %s, want %d", c.method, c.path, tt.user.name, code, body, c.code)
					continue
				}
				for _, s := range c.has {
					if !strings.Contains(body, s) {
						t.Errorf("%s %s as %s = %s, want it to contain %q", c.method, c.path, tt.user.name, body, s)
					}
				}
				for _, s := range c.lacks {
					if strings.Contains(body, s) {
						t.Errorf("%s %s as %s = %s, want no %q", c.method, c.path, tt.user.name, body, s)
					}
				}
			}
		})
	}
}

func TestAccessString(t *testing.T) {
	for _, tt := range []struct {
		a    controlplane.Access
		want string
	}{
		{controlplane.Access{Verb: "list", Group: "ddi.dev", Resource: "providers"}, "list providers.ddi.dev in every namespace"},
		{controlplane.Access{Verb: "get", Group: "ddi.dev", Resource: "providers", Namespace: "shop", Name: "pg"}, "get providers.ddi.dev pg in namespace shop"},
		{controlplane.Access{Verb: "list", Resource: "pods", Namespace: "shop"}, "list pods in namespace shop"},
	} {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.a, got, tt.want)
		}
	}
}

// nobodyCaller returns a caller that is neither admin, user nor sidecar.
type nobodyCaller struct{ controlplane.Trusting }

func (nobodyCaller) Caller(context.Context, *http.Request) (controlplane.Caller, error) {
	return controlplane.Caller{}, nil
}

// TestNobodyReadsNothing: a caller without a namespace, admin rights or a
// user's permissions reads nothing, rather than every namespace.
func TestNobodyReadsNothing(t *testing.T) {
	e := newEnvWith(t, func(o *controlplane.Options) { o.Auth = nobodyCaller{} })
	for _, path := range []string{"/v1/providers", "/v1/providers?namespace=team-a", "/v1/providers/team-a/x", "/v1/graph"} {
		if code, body := e.do(t, "GET", path, ""); code != http.StatusForbidden {
			t.Errorf("GET %s as nobody = %d %s, want 403", path, code, body)
		}
	}
}
