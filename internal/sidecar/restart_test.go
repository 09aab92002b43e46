package sidecar

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/bolt"
)

// startRealControlPlane runs the control plane of `ddi dev` (the trusting
// authenticator, a bbolt store) until the test ends.
func startRealControlPlane(t testing.TB) (string, registry.Store) {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "registry.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := controlplane.New(controlplane.Options{Store: store, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	<-srv.Ready()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		cancel()
		<-done
		store.Close()
	})
	return hs.URL, store
}

// crashableSidecar is a sidecar's API on a test server; crash ends it the
// way a killed process ends: its renewals stop and nothing is deregistered.
type crashableSidecar struct {
	*Sidecar
	url string
}

func startCrashable(t *testing.T, cfg Config) *crashableSidecar {
	t.Helper()
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	cs := &crashableSidecar{Sidecar: s, url: hs.URL}
	t.Cleanup(func() {
		hs.Close()
		cs.crash()
	})
	return cs
}

func (cs *crashableSidecar) crash() {
	rg := cs.regs
	rg.mu.Lock()
	regs := rg.regs
	rg.regs = map[string]*registration{}
	rg.mu.Unlock()
	for _, reg := range regs {
		rg.stopRenewer(reg)
	}
}

// TestRegistrationSurvivesSidecarRestart reproduces a sidecar that crashed
// and came back (a new process, so a new sidecar id) for the same function
// on the same host: it takes its registration over at once instead of
// being refused until the lease ends. Another function still cannot.
func TestRegistrationSurvivesSidecarRestart(t *testing.T) {
	cpURL, store := startRealControlPlane(t)
	cfg := Config{
		Listen:          "127.0.0.1:7471",
		ControlPlane:    cpURL,
		Consumer:        registry.Consumer{Namespace: "team", Name: "fn"},
		RegistrationTTL: time.Minute,
	}
	first := startCrashable(t, cfg)
	status, body, _ := do(t, "PUT", first.url+"/v1/providers/worker", `{"type":"http","endpoints":[{"url":"http://127.0.0.1:9001"}]}`)
	if status != http.StatusCreated {
		t.Fatalf("first PUT = %d, want 201; body %s", status, body)
	}
	first.crash()

	again := startCrashable(t, cfg)
	if again.SidecarID() == first.SidecarID() {
		t.Fatalf("both sidecars have id %q; a restarted process has a new one", again.SidecarID())
	}
	status, body, _ = do(t, "PUT", again.url+"/v1/providers/worker", `{"type":"http","endpoints":[{"url":"http://127.0.0.1:9002"}]}`)
	if status != http.StatusOK {
		t.Fatalf("PUT after the restart = %d, want 200 (replaced); body %s", status, body)
	}
	p, err := store.Get(t.Context(), "team", "worker")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Endpoints) != 1 || p.Endpoints[0].URL != "http://127.0.0.1:9002" {
		t.Errorf("stored endpoints = %+v, want the restarted sidecar's", p.Endpoints)
	}

	otherCfg := cfg
	otherCfg.Consumer.Name = "other-fn"
	other := startCrashable(t, otherCfg)
	status, body, _ = do(t, "PUT", other.url+"/v1/providers/worker", `{"type":"http","endpoints":[{"url":"http://127.0.0.1:9003"}]}`)
	if p := problemOf(t, body); status != http.StatusConflict || p.Field != "name" || !strings.Contains(p.Detail, "pick another name") {
		t.Errorf("another function's PUT = %d %+v, want 409 name-taken naming name", status, p)
	}

	if status, body, _ := do(t, "DELETE", again.url+"/v1/providers/worker", ""); status != http.StatusNoContent {
		t.Errorf("DELETE by the restarted sidecar = %d, want 204; body %s", status, body)
	}
}

// TestRegistrationDefersPodOwnersToControlPlane: on Kubernetes the control
// plane records the pod as the owner and alone can tell whether this
// sidecar's pod is that pod (the sidecar id is not, and the sidecar may not
// know its pod's uid), so a restarted sidecar forwards the write instead of
// refusing it, and a refusal from the control plane answers 409.
func TestRegistrationDefersPodOwnersToControlPlane(t *testing.T) {
	f := newFakeCP(t)
	f.providers["team/mine"] = registry.Provider{Namespace: "team", Name: "mine", Type: "http", Owner: "pod:team/fn-7d9f/3f1c",
		Lease: &registry.Lease{TTL: registry.Duration(30 * time.Second), ExpiresAt: time.Now().Add(30 * time.Second)}}
	ts := startConnected(t, f, testConfig(f), nil, nil)
	status, body, _ := do(t, "PUT", ts.url+"/v1/providers/mine", `{"type":"http","endpoints":[{"url":"http://127.0.0.1:9002"}]}`)
	if status != http.StatusOK {
		t.Fatalf("PUT of the pod's own registration = %d, want 200; body %s", status, body)
	}
}
