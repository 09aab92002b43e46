package ddi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/dditest"
)

func greeter(url string) ddi.Binding {
	return ddi.Binding{
		Name: "greeter", Provider: "greeter-v1", Type: "http", Version: "1.0.0",
		Endpoints: []ddi.Endpoint{{URL: url, Ready: true}},
		Config:    map[string]string{"greeting": "hello"},
	}
}

func TestZeroClientReadsDDIAddr(t *testing.T) {
	sc := dditest.NewSidecar(greeter("http://127.0.0.1:9"))
	defer sc.Close()
	t.Setenv("DDI_ADDR", sc.URL)

	var c ddi.Client
	b, err := c.Resolve(t.Context(), "greeter")
	if err != nil {
		t.Fatalf("Resolve(greeter) error: %v", err)
	}
	if b.Provider != "greeter-v1" {
		t.Errorf("Resolve(greeter).Provider = %q, want greeter-v1", b.Provider)
	}
	if got, _ := c.BaseURL(); got != sc.URL {
		t.Errorf("BaseURL() = %q, want %q", got, sc.URL)
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct {
		name, addr, env, want string
		wantErr               bool
	}{
		{name: "default", want: ddi.DefaultAddr},
		{name: "env", env: "http://127.0.0.1:9999/", want: "http://127.0.0.1:9999"},
		{name: "field beats env", addr: "http://127.0.0.1:1", env: "http://127.0.0.1:2", want: "http://127.0.0.1:1"},
		{name: "bare host:port", env: "127.0.0.1:7471", want: "http://127.0.0.1:7471"},
		{name: "not http", env: "ftp://x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DDI_ADDR", tt.env)
			c := &ddi.Client{Addr: tt.addr}
			got, err := c.BaseURL()
			if (err != nil) != tt.wantErr {
				t.Fatalf("BaseURL() error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("BaseURL() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	sc := dditest.NewSidecar(greeter("http://127.0.0.1:9"))
	defer sc.Close()
	sc.Unbind("db", "postgresql@^15", "no provider has type postgresql")

	for _, cached := range []bool{false, true} {
		c := sc.Client()
		if cached {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if err := c.Start(ctx); err != nil {
				t.Fatalf("Start: %v", err)
			}
		}
		for _, tt := range []struct{ name, kind, selector string }{
			{name: "db", kind: ddi.KindUnresolved, selector: "postgresql@^15"},
			{name: "nope", kind: ddi.KindUnknownDependency},
		} {
			_, err := c.Resolve(t.Context(), tt.name)
			var p *ddi.Problem
			if !errors.As(err, &p) {
				t.Fatalf("cached=%v: Resolve(%s) error = %v, want a *Problem", cached, tt.name, err)
			}
			if p.Kind() != tt.kind || p.Dependency != tt.name || p.Selector != tt.selector || p.Status != 404 {
				t.Errorf("cached=%v: Resolve(%s) = %+v, want kind %s, dependency %s, selector %q", cached, tt.name, p, tt.kind, tt.name, tt.selector)
			}
			if !ddi.IsUnresolved(err) {
				t.Errorf("IsUnresolved(%v) = false, want true", err)
			}
		}
	}
}

func TestProblemFromPlainBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	}))
	defer srv.Close()
	c := &ddi.Client{Addr: srv.URL}
	_, err := c.Resolve(t.Context(), "x")
	var p *ddi.Problem
	if !errors.As(err, &p) || p.Status != 502 || p.Detail != "upstream exploded" {
		t.Errorf("Resolve error = %#v, want Problem 502 with detail", err)
	}
}

func TestUnreachableSidecar(t *testing.T) {
	c := &ddi.Client{Addr: "http://127.0.0.1:1"}
	_, err := c.Resolve(t.Context(), "db")
	if err == nil {
		t.Fatal("Resolve against a closed port succeeded")
	}
	if err := c.Start(t.Context()); err == nil {
		t.Fatal("Start against a closed port succeeded")
	}
}

func TestCacheFollowsChanges(t *testing.T) {
	sc := dditest.NewSidecar(greeter("http://127.0.0.1:9001"))
	defer sc.Close()
	c := sc.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	gets := sc.Requests("GET /v1/bindings/greeter")
	rev := sc.Update("greeter", func(b *ddi.Binding) {
		b.Provider = "greeter-v2"
		b.Endpoints = []ddi.Endpoint{{URL: "http://127.0.0.1:9002", Ready: true}}
	})
	b := waitFor(t, func() (ddi.Binding, bool) {
		b, err := c.Resolve(t.Context(), "greeter")
		return b, err == nil && b.Revision == rev
	})
	if b.Provider != "greeter-v2" || b.Endpoint() != "http://127.0.0.1:9002" {
		t.Errorf("Resolve(greeter) after switch = %+v, want greeter-v2 at :9002", b)
	}
	sc.Unbind("greeter", "greeter", "provider greeter-v2 went away")
	waitFor(t, func() (ddi.Binding, bool) {
		_, err := c.Resolve(t.Context(), "greeter")
		return ddi.Binding{}, ddi.IsUnresolved(err)
	})
	if n := sc.Requests("GET /v1/bindings/greeter") - gets; n != 0 {
		t.Errorf("cached Resolve sent %d requests to the sidecar, want 0", n)
	}

	// When the watch's context ends, Resolve asks the sidecar again.
	cancel()
	waitFor(t, func() (ddi.Binding, bool) {
		_, _ = c.Resolve(t.Context(), "greeter")
		return ddi.Binding{}, sc.Requests("GET /v1/bindings/greeter") > gets
	})
}

func TestCacheSurvivesSidecarRestart(t *testing.T) {
	sc := dditest.NewSidecar(greeter("http://127.0.0.1:9001"))
	c := sc.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	sc.Close() // the sidecar goes away: the cache keeps serving
	if b, err := c.Resolve(t.Context(), "greeter"); err != nil || b.Provider != "greeter-v1" {
		t.Fatalf("Resolve after sidecar stop = %+v, %v; want the cached greeter-v1", b, err)
	}
}

func TestResolveCachedAllocs(t *testing.T) {
	sc := dditest.NewSidecar(greeter("http://127.0.0.1:9001"))
	defer sc.Close()
	c := sc.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := c.Resolve(ctx, "greeter"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("cached Resolve allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkResolveCached(b *testing.B) {
	sc := dditest.NewSidecar(greeter("http://127.0.0.1:9001"))
	defer sc.Close()
	c := sc.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		b.Fatalf("Start: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Resolve(ctx, "greeter"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveUncached(b *testing.B) {
	sc := dditest.NewSidecar(greeter("http://127.0.0.1:9001"))
	defer sc.Close()
	c := sc.Client()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Resolve(context.Background(), "greeter"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestWatch(t *testing.T) {
	sc := dditest.NewSidecar(greeter("http://127.0.0.1:9001"))
	defer sc.Close()
	sc.Unbind("db", "postgresql", "none yet")
	c := sc.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	ch, err := c.Watch(ctx, "greeter")
	if err != nil {
		t.Fatalf("Watch(greeter): %v", err)
	}
	first := recv(t, ch)
	if first.Kind != ddi.EventBinding || first.Binding.Provider != "greeter-v1" {
		t.Fatalf("first event = %+v, want the current binding", first)
	}
	sc.Bind(ddi.Binding{Name: "db", Provider: "pg", Type: "postgresql"}) // filtered out
	sc.Update("greeter", func(b *ddi.Binding) { b.Provider = "greeter-v2" })
	sc.Unbind("greeter", "greeter", "gone")
	var got []string
	for range 2 {
		ev := recv(t, ch)
		got = append(got, ev.Kind+" "+ev.Name+" "+ev.Binding.Provider+ev.Unresolved.Reason)
	}
	want := []string{"binding greeter greeter-v2", "unbound greeter gone"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	cancel()
	for range ch {
	}

	if _, err := c.Watch(t.Context(), "nope"); !ddi.IsUnresolved(err) {
		t.Errorf("Watch(nope) error = %v, want unknown-dependency problem", err)
	}
	// An unresolved dependency can be watched: it may get a provider.
	if _, err := c.Watch(t.Context(), "db"); err != nil {
		t.Errorf("Watch(db) of an unresolved dependency: %v", err)
	}
}

func TestWatchFunc(t *testing.T) {
	sc := dditest.NewSidecar(greeter("http://127.0.0.1:9001"))
	defer sc.Close()
	c := sc.Client()
	ctx, cancel := context.WithCancel(t.Context())
	var got []string
	err := c.WatchFunc(ctx, "", func(ev ddi.Event) {
		got = append(got, ev.Binding.Provider)
		if len(got) == 1 {
			sc.Update("greeter", func(b *ddi.Binding) { b.Provider = "greeter-v2" })
		} else {
			cancel()
		}
	})
	if err != nil {
		t.Fatalf("WatchFunc: %v", err)
	}
	if diff := cmp.Diff([]string{"greeter-v1", "greeter-v2"}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestRegister(t *testing.T) {
	sc := dditest.NewSidecar()
	defer sc.Close()
	c := sc.Client()
	ctx, cancel := context.WithCancel(t.Context())
	reg, err := c.Register(ctx, "greeter-v3", ddi.ProviderSpec{
		Type: "http", Version: "3.0.0", Endpoints: []string{"http://127.0.0.1:9003"},
		Labels: map[string]string{"tier": "gold"}, TTL: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if reg.Provider.Name != "greeter-v3" || reg.Provider.Version != "3.0.0" {
		t.Errorf("Register() stored %+v", reg.Provider)
	}
	p, ok := sc.Providers()["greeter-v3"]
	if !ok || len(p.Endpoints) != 1 || !p.Endpoints[0].Ready || p.Labels["tier"] != "gold" {
		t.Fatalf("sidecar has %+v, want greeter-v3 with one ready endpoint", sc.Providers())
	}
	cancel()
	select {
	case <-reg.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("registration not deleted 5s after its context ended")
	}
	if err := reg.Err(); err != nil {
		t.Errorf("deregistration: %v", err)
	}
	if _, ok := sc.Providers()["greeter-v3"]; ok {
		t.Error("provider still registered after its context ended")
	}
}

func TestRegisterBadInput(t *testing.T) {
	sc := dditest.NewSidecar()
	defer sc.Close()
	_, err := sc.Client().Register(t.Context(), "x", ddi.ProviderSpec{Type: "http", TTL: time.Hour * 48})
	var p *ddi.Problem
	if !errors.As(err, &p) || p.Field != "ttl" || p.Status != 400 {
		t.Errorf("Register with a 48h TTL: error = %v, want a 400 problem naming ttl", err)
	}
}

func TestInvoke(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("traceparent"))
	}))
	defer backend.Close()
	sc := dditest.NewSidecar(greeter(backend.URL))
	defer sc.Close()
	hc := sc.Client().InvokeClient()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://greeter/hello/world?x=1", nil)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "GET /hello/world?x=1 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if string(body) != want {
		t.Errorf("invoke body = %q, want %q", body, want)
	}
	if n := sc.Requests("GET /v1/invoke/greeter/hello/world"); n != 1 {
		t.Errorf("sidecar saw %d invokes of /v1/invoke/greeter/hello/world, want 1", n)
	}

	resp, err = hc.Get("http://unknown/x")
	if err != nil {
		t.Fatalf("invoke unknown: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("invoke of an unknown dependency = %d, want 404", resp.StatusCode)
	}
}

func TestWaitReady(t *testing.T) {
	sc := dditest.NewSidecar()
	defer sc.Close()
	sc.SetReady(false)
	time.AfterFunc(50*time.Millisecond, func() { sc.SetReady(true) })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := sc.Client().WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}

	sc.SetReady(false)
	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := sc.Client().WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitReady on a sidecar that never gets ready = %v, want deadline exceeded", err)
	}
}

func TestBindingHelpers(t *testing.T) {
	tests := []struct {
		name                  string
		b                     ddi.Binding
		host, port, addr, end string
	}{
		{
			name: "postgres url", host: "db.local", port: "6543", addr: "db.local:6543", end: "postgresql://db.local:6543/app",
			b: ddi.Binding{Type: "postgresql", Endpoints: []ddi.Endpoint{{URL: "http://down:1"}, {URL: "postgresql://db.local:6543/app", Ready: true}}},
		},
		{
			name: "default port by type", host: "cache", port: "6379", addr: "cache:6379", end: "redis://cache",
			b: ddi.Binding{Type: "redis", Endpoints: []ddi.Endpoint{{URL: "redis://cache", Ready: true}}},
		},
		{
			name: "config only", host: "10.0.0.1", port: "4222", addr: "10.0.0.1:4222",
			b: ddi.Binding{Type: "nats", Config: map[string]string{"host": "10.0.0.1", "port": "4222"}},
		},
		{
			name: "ipv6", host: "::1", port: "8080", addr: "[::1]:8080", end: "http://[::1]:8080",
			b: ddi.Binding{Type: "http", Endpoints: []ddi.Endpoint{{URL: "http://[::1]:8080", Ready: true}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Host(); got != tt.host {
				t.Errorf("Host() = %q, want %q", got, tt.host)
			}
			if got := tt.b.Port(); got != tt.port {
				t.Errorf("Port() = %q, want %q", got, tt.port)
			}
			if got := tt.b.Addr(); got != tt.addr {
				t.Errorf("Addr() = %q, want %q", got, tt.addr)
			}
			if got := tt.b.Endpoint(); got != tt.end {
				t.Errorf("Endpoint() = %q, want %q", got, tt.end)
			}
		})
	}
	b := ddi.Binding{Config: map[string]string{"username": "c", "database": "d"}, Secret: map[string]string{"username": "s"}}
	if b.Value("username") != "s" || b.Value("database") != "d" {
		t.Errorf("Value: secret must win over config: %q %q", b.Value("username"), b.Value("database"))
	}
	if _, err := (ddi.Binding{Name: "x"}).URL(); !errors.Is(err, ddi.ErrNoEndpoint) {
		t.Errorf("URL() of a binding without endpoints = %v, want ErrNoEndpoint", err)
	}
}

func recv(t *testing.T, ch <-chan ddi.Event) ddi.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event within 5s")
	}
	return ddi.Event{}
}

// waitFor polls cond until it holds, for at most 5 s.
func waitFor[T any](t *testing.T, cond func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, ok := cond()
		if ok {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 5s (last value %+v)", v)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
