// Package contract is the one suite of SDK client cases that every
// implementation of the sidecar's local API passes: the real sidecar
// (internal/sidecar in the main module runs it against a sidecar with a
// fake control plane) and the fake in dditest (run by this package's own
// test). A behaviour the SDK relies on is asserted here once, so the fake
// cannot drift from the sidecar it stands in for.
//
// It is for tests only and must not be imported by production code. It
// uses the SDK's public API only, as a function would.
package contract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	ddi "ddi.dev/ddi/sdk"
)

// Sidecar is a running implementation of the sidecar's local API.
type Sidecar interface {
	// URL is its base URL, as DDI_ADDR would carry it.
	URL() string
	// Set makes it serve b as bound (replacing a binding of the same
	// name) and u as unresolved, and returns once it serves them.
	Set(t *testing.T, b []ddi.Binding, u []ddi.Unresolved)
}

// Fixture is what a Sidecar serves when it starts. Every name in it is a
// declared dependency of the function; Unknown is not.
type Fixture struct {
	Bindings   []ddi.Binding
	Unresolved []ddi.Unresolved
}

// Unknown is a dependency the function does not declare.
const Unknown = "undeclared"

// Run runs every case (bindings list and get, an unresolved and an
// undeclared dependency, watch, the Start cache, readiness, registration
// PUT and DELETE, invoke) against a Sidecar that start returns for a fixture.
// start is called once per case; the Sidecar must stop when t ends.
func Run(t *testing.T, start func(t *testing.T, f Fixture) Sidecar) {
	t.Run("bindings list", func(t *testing.T) { testList(t, start) })
	t.Run("binding found", func(t *testing.T) { testFound(t, start) })
	t.Run("binding unresolved", func(t *testing.T) { testUnresolved(t, start) })
	t.Run("binding unknown", func(t *testing.T) { testUnknown(t, start) })
	t.Run("watch", func(t *testing.T) { testWatch(t, start) })
	t.Run("cache", func(t *testing.T) { testCache(t, start) })
	t.Run("ready", func(t *testing.T) { testReady(t, start) })
	t.Run("register and deregister", func(t *testing.T) { testRegister(t, start) })
	t.Run("register refused", func(t *testing.T) { testRegisterRefused(t, start) })
	t.Run("invoke", func(t *testing.T) { testInvoke(t, start) })
	t.Run("invoke unresolved", func(t *testing.T) { testInvokeUnresolved(t, start) })
}

// upstream is an http provider's endpoint: it answers "hello from PATH?QUERY".
func upstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s?%s", r.URL.Path, r.URL.RawQuery)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// fixture is the standard fixture: greeter bound to an http provider at
// endpoint, db unresolved.
func fixture(endpoint string) Fixture {
	return Fixture{
		Bindings: []ddi.Binding{{
			Name: "greeter", Provider: "greeter-v2", Type: "http", Version: "2.0.0", Selector: "http",
			Endpoints: []ddi.Endpoint{{URL: endpoint, Ready: true}},
			Config:    map[string]string{"greeting": "hello"},
		}},
		Unresolved: []ddi.Unresolved{{Name: "db", Selector: "postgresql@^15", Reason: "no provider of type postgresql matches ^15"}},
	}
}

// view is what the cases compare of a binding: what the function uses.
type view struct {
	Name, Provider, Type, Version string
	Endpoints                     []ddi.Endpoint
	Config, Secret                map[string]string
}

func viewOf(b ddi.Binding) view {
	return view{Name: b.Name, Provider: b.Provider, Type: b.Type, Version: b.Version,
		Endpoints: b.Endpoints, Config: b.Config, Secret: b.Secret}
}

func client(s Sidecar) *ddi.Client { return &ddi.Client{Addr: s.URL()} }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func testList(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	f := fixture(upstream(t))
	s := start(t, f)
	snap, err := client(s).Bindings(ctx(t))
	if err != nil {
		t.Fatalf("Bindings() error = %v", err)
	}
	var got []view
	for _, b := range snap.Bindings {
		got = append(got, viewOf(b))
	}
	if diff := cmp.Diff([]view{viewOf(f.Bindings[0])}, got); diff != "" {
		t.Errorf("Bindings().Bindings mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(f.Unresolved, snap.Unresolved); diff != "" {
		t.Errorf("Bindings().Unresolved mismatch (-want +got):\n%s", diff)
	}
	for _, b := range snap.Bindings {
		if b.Revision <= 0 {
			t.Errorf("binding %s has revision %d, want > 0", b.Name, b.Revision)
		}
	}
}

func testFound(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	f := fixture(upstream(t))
	s := start(t, f)
	b, err := client(s).Resolve(ctx(t), "greeter")
	if err != nil {
		t.Fatalf("Resolve(greeter) error = %v", err)
	}
	if diff := cmp.Diff(viewOf(f.Bindings[0]), viewOf(b)); diff != "" {
		t.Errorf("Resolve(greeter) mismatch (-want +got):\n%s", diff)
	}
	if got := b.Value("greeting"); got != "hello" {
		t.Errorf("Resolve(greeter).Value(greeting) = %q, want hello", got)
	}
}

// problemOf returns err's *ddi.Problem, failing t when there is none.
func problemOf(t *testing.T, what string, err error) *ddi.Problem {
	t.Helper()
	var p *ddi.Problem
	if !errors.As(err, &p) {
		t.Fatalf("%s error = %v (%T), want a *ddi.Problem", what, err, err)
	}
	return p
}

func testUnresolved(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	s := start(t, fixture(upstream(t)))
	_, err := client(s).Resolve(ctx(t), "db")
	p := problemOf(t, "Resolve(db)", err)
	if p.Status != http.StatusNotFound || p.Kind() != ddi.KindUnresolved || p.Dependency != "db" || p.Selector != "postgresql@^15" {
		t.Errorf("Resolve(db) problem = %+v, want status 404, kind %s, dependency db, selector postgresql@^15", p, ddi.KindUnresolved)
	}
	if !ddi.IsUnresolved(err) {
		t.Errorf("IsUnresolved(Resolve(db) error) = false, want true")
	}
}

func testUnknown(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	s := start(t, fixture(upstream(t)))
	_, err := client(s).Resolve(ctx(t), Unknown)
	p := problemOf(t, "Resolve("+Unknown+")", err)
	if p.Status != http.StatusNotFound || p.Kind() != ddi.KindUnknownDependency || p.Dependency != Unknown {
		t.Errorf("Resolve(%s) problem = %+v, want status 404, kind %s, dependency %s", Unknown, p, ddi.KindUnknownDependency, Unknown)
	}
}

func testWatch(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	f := fixture(upstream(t))
	s := start(t, f)
	c := ctx(t)
	events, err := client(s).Watch(c, "greeter")
	if err != nil {
		t.Fatalf("Watch(greeter) error = %v", err)
	}
	next := func(want string) ddi.Event {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("watch closed, want an event with greeting %q", want)
			}
			return ev
		case <-c.Done():
			t.Fatalf("no watch event with greeting %q", want)
		}
		return ddi.Event{}
	}
	if ev := next("hello"); ev.Kind != ddi.EventBinding || ev.Name != "greeter" || ev.Binding.Value("greeting") != "hello" {
		t.Fatalf("first event = %+v, want the current greeter binding", ev)
	}
	changed := f.Bindings[0]
	changed.Config = map[string]string{"greeting": "bonjour"}
	s.Set(t, []ddi.Binding{changed}, f.Unresolved)
	if ev := next("bonjour"); ev.Kind != ddi.EventBinding || ev.Name != "greeter" || ev.Binding.Value("greeting") != "bonjour" {
		t.Errorf("event after the change = %+v, want greeter with greeting bonjour", ev)
	}
	if _, err := client(s).Watch(c, Unknown); err == nil {
		t.Errorf("Watch(%s) error = nil, want an error for an undeclared dependency", Unknown)
	}
}

func testCache(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	f := fixture(upstream(t))
	s := start(t, f)
	c := client(s)
	cx := ctx(t)
	if err := c.Start(cx); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	if b, err := c.Resolve(cx, "greeter"); err != nil || b.Value("greeting") != "hello" {
		t.Errorf("cached Resolve(greeter) = %+v, %v; want greeting hello", b, err)
	}
	_, err := c.Resolve(cx, "db")
	if p := problemOf(t, "cached Resolve(db)", err); p.Kind() != ddi.KindUnresolved || p.Selector != "postgresql@^15" {
		t.Errorf("cached Resolve(db) problem = %+v, want kind %s, selector postgresql@^15", p, ddi.KindUnresolved)
	}
	_, err = c.Resolve(cx, Unknown)
	if p := problemOf(t, "cached Resolve("+Unknown+")", err); p.Kind() != ddi.KindUnknownDependency {
		t.Errorf("cached Resolve(%s) problem = %+v, want kind %s", Unknown, p, ddi.KindUnknownDependency)
	}
	changed := f.Bindings[0]
	changed.Config = map[string]string{"greeting": "bonjour"}
	s.Set(t, []ddi.Binding{changed}, f.Unresolved)
	// The change reaches the cache through the watch: wait for it.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := c.Resolve(cx, "greeter")
		if err == nil && b.Value("greeting") == "bonjour" {
			return
		}
		select {
		case <-cx.Done():
			t.Fatalf("cached Resolve(greeter) = %+v, %v; want greeting bonjour after the change", b, err)
		case <-tick.C:
		}
	}
}

func testReady(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	s := start(t, fixture(upstream(t)))
	if err := client(s).WaitReady(ctx(t)); err != nil {
		t.Errorf("WaitReady() = %v, want nil once the first snapshot is served", err)
	}
}

func testRegister(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	endpoint := upstream(t)
	s := start(t, fixture(endpoint))
	spec := ddi.ProviderSpec{Type: "postgres", Version: "15.2.0", Endpoints: []string{"postgresql://127.0.0.1:5432/app"},
		Labels: map[string]string{"tier": "gold"}, Config: map[string]string{"sslmode": "disable"}, TTL: time.Minute}
	r, err := client(s).Register(ctx(t), "orders-pg", spec)
	if err != nil {
		t.Fatalf("Register(orders-pg) error = %v", err)
	}
	want := ddi.Provider{Name: "orders-pg", Type: "postgresql", Version: "15.2.0",
		Labels: spec.Labels, Config: spec.Config, Endpoints: []ddi.Endpoint{{URL: spec.Endpoints[0], Ready: true}}}
	got := r.Provider
	got.Namespace, got.Revision = "", 0 // the sidecar's namespace; assigned by the store
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Register(orders-pg).Provider mismatch (-want +got):\n%s", diff)
	}
	if r.Provider.Revision <= 0 {
		t.Errorf("Register(orders-pg).Provider.Revision = %d, want > 0", r.Provider.Revision)
	}
	if err := r.Deregister(ctx(t)); err != nil {
		t.Errorf("Deregister() = %v, want nil", err)
	}
	select {
	case <-r.Done():
	case <-ctx(t).Done():
		t.Errorf("Done() not closed after Deregister")
	}
}

func testRegisterRefused(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	s := start(t, fixture(upstream(t)))
	_, err := client(s).Register(ctx(t), "no-type", ddi.ProviderSpec{Endpoints: []string{"http://127.0.0.1:1"}})
	p := problemOf(t, "Register without a type", err)
	if p.Status != http.StatusBadRequest {
		t.Errorf("Register without a type: problem = %+v, want status 400", p)
	}
}

func testInvoke(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	s := start(t, fixture(upstream(t)))
	req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, "http://greeter/say/hi?lang=en", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client(s).InvokeClient().Do(req)
	if err != nil {
		t.Fatalf("invoke greeter: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "hello from /say/hi?lang=en" {
		t.Errorf("invoke greeter = %d %q, want 200 %q", resp.StatusCode, body, "hello from /say/hi?lang=en")
	}
}

func testInvokeUnresolved(t *testing.T, start func(*testing.T, Fixture) Sidecar) {
	s := start(t, fixture(upstream(t)))
	for _, alias := range []string{"db", Unknown} {
		req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, "http://"+alias+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client(s).InvokeClient().Do(req)
		if err != nil {
			t.Fatalf("invoke %s: %v", alias, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("invoke %s = %d %s, want 404 application/problem+json", alias, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}
