package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// fakeCP is an in-test control plane: /v1/stream pushes whatever the test
// sends on msgs, /v1/ack records acks, and /v1/providers keeps providers in
// a map and records every call.
type fakeCP struct {
	srv *httptest.Server

	hellos chan protocol.Hello   // one per stream connection
	msgs   chan protocol.Message // pushed to the open stream
	acks   chan protocol.Ack
	drop   chan struct{} // ends the open stream

	mu        sync.Mutex
	providers map[string]registry.Provider
	calls     []string // "PUT default/x", "RENEW default/x ttl", ...
	rev       int64
}

func newFakeCP(t testing.TB) *fakeCP {
	t.Helper()
	return startFakeCP(t, false)
}

// newTLSFakeCP is newFakeCP over https, with httptest's certificate
// (f.srv.Certificate()).
func newTLSFakeCP(t testing.TB) *fakeCP {
	t.Helper()
	return startFakeCP(t, true)
}

func startFakeCP(t testing.TB, useTLS bool) *fakeCP {
	t.Helper()
	f := &fakeCP{
		hellos:    make(chan protocol.Hello, 16),
		msgs:      make(chan protocol.Message, 16),
		acks:      make(chan protocol.Ack, 64),
		drop:      make(chan struct{}, 1),
		providers: map[string]registry.Provider{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/stream", f.stream)
	mux.HandleFunc("POST /v1/ack", func(w http.ResponseWriter, r *http.Request) {
		var a protocol.Ack
		if p := httpapi.DecodeJSON(w, r, &a); p != nil {
			httpapi.WriteProblem(w, p)
			return
		}
		f.acks <- a
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/providers/{ns}/{name}", f.getProvider)
	mux.HandleFunc("PUT /v1/providers/{ns}/{name}", f.putProvider)
	mux.HandleFunc("DELETE /v1/providers/{ns}/{name}", f.deleteProvider)
	mux.HandleFunc("POST /v1/providers/{ns}/{name}/renew", f.renewProvider)
	f.srv = httptest.NewUnstartedServer(mux)
	if useTLS {
		// Handshakes refused by untrusting sidecars are expected.
		f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	return f
}

func (f *fakeCP) stream(w http.ResponseWriter, r *http.Request) {
	var h protocol.Hello
	if p := httpapi.DecodeJSON(w, r, &h); p != nil {
		httpapi.WriteProblem(w, p)
		return
	}
	select { // a stale drop must not end this new stream
	case <-f.drop:
	default:
	}
	f.hellos <- h
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case m := <-f.msgs:
			if enc.Encode(m) != nil || rc.Flush() != nil {
				return
			}
		case <-f.drop:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (f *fakeCP) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

// Calls returns the provider calls so far.
func (f *fakeCP) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeCP) getProvider(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("ns") + "/" + r.PathValue("name")
	f.record("GET " + key)
	f.mu.Lock()
	p, ok := f.providers[key]
	f.mu.Unlock()
	if !ok {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusNotFound, "not-found", "provider "+key+" does not exist"))
		return
	}
	p.Secret = nil
	httpapi.WriteJSON(w, http.StatusOK, p)
}

func (f *fakeCP) putProvider(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("ns") + "/" + r.PathValue("name")
	var p registry.Provider
	if prob := httpapi.DecodeJSON(w, r, &p); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	f.record("PUT " + key)
	f.mu.Lock()
	_, existed := f.providers[key]
	f.rev++
	p.Revision = f.rev
	if p.Lease != nil {
		p.Lease.ExpiresAt = time.Now().Add(time.Duration(p.Lease.TTL))
	}
	f.providers[key] = p
	f.mu.Unlock()
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	p.Secret = nil
	httpapi.WriteJSON(w, status, p)
}

func (f *fakeCP) deleteProvider(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("ns") + "/" + r.PathValue("name")
	f.record("DELETE " + key)
	f.mu.Lock()
	_, ok := f.providers[key]
	delete(f.providers, key)
	f.mu.Unlock()
	if !ok {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusNotFound, "not-found", "provider "+key+" does not exist"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeCP) renewProvider(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("ns") + "/" + r.PathValue("name")
	var body struct {
		TTL registry.Duration `json:"ttl"`
	}
	if prob := httpapi.DecodeJSON(w, r, &body); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	f.record(fmt.Sprintf("RENEW %s %s", key, time.Duration(body.TTL)))
	f.mu.Lock()
	p, ok := f.providers[key]
	f.mu.Unlock()
	if !ok {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusNotFound, "not-found", "provider "+key+" does not exist"))
		return
	}
	p.Secret = nil
	httpapi.WriteJSON(w, http.StatusOK, p)
}

// nextHello waits for the next stream connection.
func (f *fakeCP) nextHello(t testing.TB) protocol.Hello {
	t.Helper()
	select {
	case h := <-f.hellos:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("the sidecar did not open a stream within 5s")
		return protocol.Hello{}
	}
}

// nextAck waits for the next ack.
func (f *fakeCP) nextAck(t testing.TB) protocol.Ack {
	t.Helper()
	select {
	case a := <-f.acks:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("the sidecar sent no ack within 5s")
		return protocol.Ack{}
	}
}

// push sends a snapshot and waits for its ack.
func (f *fakeCP) push(t testing.TB, version int64, bindings []registry.Binding, unresolved []registry.Unresolved) protocol.Ack {
	t.Helper()
	f.msgs <- protocol.Message{Type: protocol.TypeSnapshot, Version: version, Hash: protocol.Hash(bindings, unresolved),
		Bindings: bindings, Unresolved: unresolved}
	return f.nextAck(t)
}

// syncBuffer is a goroutine-safe log sink, so tests can search the logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testSidecar is a running sidecar on a loopback listener.
type testSidecar struct {
	*Sidecar
	url  string
	logs *syncBuffer
	stop func() // stops it and waits for Serve to return
}

// testConfig is a config aimed at f with fast reconnects.
func testConfig(f *fakeCP) Config {
	return Config{
		Listen:       "127.0.0.1:0",
		ControlPlane: f.srv.URL,
		SidecarID:    "sc-test",
		Consumer:     registry.Consumer{Namespace: "team", Name: "fn"},
		Dependencies: []registry.Dependency{
			mustDep("db=postgresql@^15"),
			mustDep("greeter=greeter"),
		},
		ReconnectMin: 10 * time.Millisecond,
		ReconnectMax: 50 * time.Millisecond,
	}
}

func mustDep(s string) registry.Dependency {
	d, err := registry.ParseDependency(s)
	if err != nil {
		panic(err)
	}
	return d
}

// startSidecar runs a sidecar with cfg until the test ends.
func startSidecar(t testing.TB, cfg Config) *testSidecar {
	t.Helper()
	logs := &syncBuffer{}
	s, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve() = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Serve did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return &testSidecar{Sidecar: s, url: "http://" + ln.Addr().String(), logs: logs, stop: stop}
}

// startConnected starts a sidecar and delivers a first snapshot.
func startConnected(t testing.TB, f *fakeCP, cfg Config, bindings []registry.Binding, unresolved []registry.Unresolved) *testSidecar {
	t.Helper()
	ts := startSidecar(t, cfg)
	f.nextHello(t)
	f.push(t, 1, bindings, unresolved)
	return ts
}

// do sends a request and returns status, body and headers. A body is
// sent as application/json, as ddi's clients do, unless header names
// another Content-Type.
func do(t *testing.T, method, url, body string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// problemOf decodes a problem document.
func problemOf(t *testing.T, body []byte) httpapi.Problem {
	t.Helper()
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("body %q is not a problem document: %v", body, err)
	}
	return p
}

// Fixtures.
func greeterBinding(urls ...string) registry.Binding {
	b := registry.Binding{Name: "greeter", Provider: "greeter-v2", Namespace: "team", Type: "http", Version: "2.0.0",
		Config: map[string]string{"greeting": "hello"}, Selector: "greeter", Revision: 1}
	for _, u := range urls {
		b.Endpoints = append(b.Endpoints, registry.Endpoint{URL: u, Ready: true})
	}
	return b
}

const testSecret = "s3cr3t-pa55w0rd"

func dbBinding() registry.Binding {
	return registry.Binding{Name: "db", Provider: "pg", Namespace: "team", Type: "postgresql", Version: "15.2.0",
		Endpoints: []registry.Endpoint{{URL: "postgres://pg.team:5432/app", Ready: true}},
		Config:    map[string]string{"sslmode": "disable"},
		Secret:    map[string]string{"username": "app", "password": testSecret},
		Selector:  "postgresql@^15", Revision: 1}
}

var (
	cmpIgnoreLeaseExpiry = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Lease.ExpiresAt" }, cmp.Ignore())
	cmpIgnoreRevision    = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Revision" }, cmp.Ignore())
)
