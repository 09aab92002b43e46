package sidecar

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

func TestRegisterBadInput(t *testing.T) {
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), nil, nil)
	valid := `{"type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001"}],"ttl":"30s"}`
	tests := []struct {
		name       string
		path       string
		body       string
		wantStatus int
		wantField  string
	}{
		{name: "malformed JSON", path: "worker", body: `{"type":`, wantStatus: 400},
		{name: "not JSON", path: "worker", body: `hello`, wantStatus: 400},
		{name: "empty body", path: "worker", body: ``, wantStatus: 400},
		{name: "two values", path: "worker", body: valid + valid, wantStatus: 400},
		{name: "unknown field", path: "worker", body: `{"type":"http","colour":"red"}`, wantStatus: 400, wantField: "colour"},
		{name: "namespace is not accepted", path: "worker", body: `{"type":"http","namespace":"other"}`, wantStatus: 400, wantField: "namespace"},
		{name: "wrong JSON type", path: "worker", body: `{"type":7}`, wantStatus: 400, wantField: "type"},
		{name: "name not DNS-1123", path: "Worker_1", body: valid, wantStatus: 400, wantField: "name"},
		{name: "name too long", path: strings.Repeat("w", 64), body: valid, wantStatus: 400, wantField: "name"},
		{name: "missing type", path: "worker", body: `{"endpoints":[{"url":"http://127.0.0.1:9001"}]}`, wantStatus: 400, wantField: "type"},
		{name: "invalid version", path: "worker", body: `{"type":"http","version":"one"}`, wantStatus: 400, wantField: "version"},
		{name: "invalid endpoint URL", path: "worker", body: `{"type":"http","endpoints":[{"url":"not a url"}]}`, wantStatus: 400, wantField: "endpoints[0].url"},
		{name: "negative ttl", path: "worker", body: `{"type":"http","ttl":"-5s"}`, wantStatus: 400, wantField: "ttl"},
		{name: "zero ttl", path: "worker", body: `{"type":"http","ttl":"0s"}`, wantStatus: 400, wantField: "ttl"},
		{name: "huge ttl", path: "worker", body: `{"type":"http","ttl":"1000h"}`, wantStatus: 400, wantField: "ttl"},
		{name: "ttl not a duration", path: "worker", body: `{"type":"http","ttl":"soon"}`, wantStatus: 400, wantField: "ttl"},
		{name: "bad config key", path: "worker", body: `{"type":"http","config":{"../x":"v"}}`, wantStatus: 400, wantField: "config key"},
		{name: "bad label", path: "worker", body: `{"type":"http","labels":{"tier":"gold!"}}`, wantStatus: 400, wantField: "labels.tier"},
		{name: "body over 1 MiB", path: "worker", body: `{"type":"http","config":{"k":"` + strings.Repeat("x", 1<<20) + `"}}`, wantStatus: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := do(t, "PUT", ts.url+"/v1/providers/"+tt.path, tt.body, "Content-Type", "application/json")
			if status != tt.wantStatus {
				t.Fatalf("PUT status = %d, want %d; body %s", status, tt.wantStatus, body)
			}
			if p := problemOf(t, body); p.Field != tt.wantField {
				t.Errorf("field = %q, want %q (detail %q)", p.Field, tt.wantField, p.Detail)
			}
		})
	}
	t.Run("delete with a bad name", func(t *testing.T) {
		status, body, _ := do(t, "DELETE", ts.url+"/v1/providers/Nope!", "")
		if p := problemOf(t, body); status != 400 || p.Field != "name" {
			t.Errorf("DELETE status, field = %d, %q, want 400, \"name\"", status, p.Field)
		}
	})
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("control plane calls = %q, want none for bad input", calls)
	}
}

func TestRegisterLifecycle(t *testing.T) {
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), nil, nil)

	status, body, _ := do(t, "PUT", ts.url+"/v1/providers/worker",
		`{"type":"http","version":"v1.0.0","endpoints":[{"url":"http://127.0.0.1:9001"},{"url":"http://127.0.0.1:9002","ready":false}],"labels":{"tier":"gold"},"secret":{"token":"`+testSecret+`"},"ttl":"1s"}`)
	if status != http.StatusCreated {
		t.Fatalf("PUT status = %d, want 201; body %s", status, body)
	}
	if strings.Contains(string(body), testSecret) {
		t.Errorf("PUT response %s echoes the secret", body)
	}
	var got registry.Provider
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	f.mu.Lock()
	stored := f.providers["team/worker"]
	f.mu.Unlock()
	want := registry.Provider{Namespace: "team", Name: "worker", Type: "http", Version: "1.0.0", Labels: map[string]string{"tier": "gold"},
		Endpoints: []registry.Endpoint{{URL: "http://127.0.0.1:9001", Ready: true}, {URL: "http://127.0.0.1:9002", Ready: false}},
		Secret:    map[string]string{"token": testSecret}, Lease: &registry.Lease{TTL: registry.Duration(time.Second)}, Owner: "sidecar:team/fn@" + host}
	if diff := cmp.Diff(want, stored, cmpIgnoreLeaseExpiry, cmpIgnoreRevision); diff != "" {
		t.Errorf("provider forwarded to the control plane (-want +got):\n%s", diff)
	}

	// The lease is renewed every ttl/3.
	deadline := time.Now().Add(3 * time.Second)
	for !slices.Contains(f.Calls(), "RENEW team/worker 1s") {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal within 3s; calls %q", f.Calls())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Replacing it answers 200.
	status, body, _ = do(t, "PUT", ts.url+"/v1/providers/worker", `{"type":"http","endpoints":[{"url":"http://127.0.0.1:9003"}],"ttl":"2s"}`)
	if status != http.StatusOK {
		t.Fatalf("second PUT status = %d, want 200; body %s", status, body)
	}

	// A name this sidecar did not register cannot be deleted.
	status, body, _ = do(t, "DELETE", ts.url+"/v1/providers/other", "")
	if p := problemOf(t, body); status != 404 || p.Field != "name" {
		t.Errorf("DELETE other: status, field = %d, %q, want 404, \"name\"", status, p.Field)
	}

	status, body, _ = do(t, "DELETE", ts.url+"/v1/providers/worker", "")
	if status != http.StatusNoContent {
		t.Fatalf("DELETE status = %d, want 204; body %s", status, body)
	}
	f.mu.Lock()
	_, exists := f.providers["team/worker"]
	f.mu.Unlock()
	if exists {
		t.Error("provider still stored after DELETE")
	}
	status, _, _ = do(t, "DELETE", ts.url+"/v1/providers/worker", "")
	if status != http.StatusNotFound {
		t.Errorf("second DELETE status = %d, want 404", status)
	}
}

func TestRegisterRefusesForeignNames(t *testing.T) {
	f := newFakeCP(t)
	f.providers["team/declared"] = registry.Provider{Namespace: "team", Name: "declared", Type: "http"}
	f.providers["team/leased"] = registry.Provider{Namespace: "team", Name: "leased", Type: "http", Owner: "another-sidecar",
		Lease: &registry.Lease{TTL: registry.Duration(30 * time.Second), ExpiresAt: time.Now().Add(30 * time.Second)}}
	ts := startConnected(t, f, testConfig(f), nil, nil)
	for _, name := range []string{"declared", "leased"} {
		t.Run(name, func(t *testing.T) {
			status, body, _ := do(t, "PUT", ts.url+"/v1/providers/"+name, `{"type":"http"}`)
			if p := problemOf(t, body); status != http.StatusConflict || p.Field != "name" {
				t.Errorf("PUT status, field = %d, %q, want 409, \"name\"; body %s", status, p.Field, body)
			}
		})
	}
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "PUT") {
			t.Errorf("control plane got %q, want no PUT for a name taken by someone else", c)
		}
	}
}

func TestShutdownDeregisters(t *testing.T) {
	f := newFakeCP(t)
	f.providers["team/declared"] = registry.Provider{Namespace: "team", Name: "declared", Type: "http"}
	ts := startConnected(t, f, testConfig(f), nil, nil)
	for _, name := range []string{"a", "b"} {
		if status, body, _ := do(t, "PUT", ts.url+"/v1/providers/"+name, `{"type":"http"}`); status != 201 {
			t.Fatalf("PUT %s status = %d; body %s", name, status, body)
		}
	}
	ts.stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	var left []string
	for k := range f.providers {
		left = append(left, k)
	}
	if diff := cmp.Diff([]string{"team/declared"}, left); diff != "" {
		t.Errorf("providers after shutdown (-want +got):\n%s", diff)
	}
}

func TestRenewRecreatesLapsedLease(t *testing.T) {
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), nil, nil)
	if status, body, _ := do(t, "PUT", ts.url+"/v1/providers/worker", `{"type":"http","ttl":"1s"}`); status != 201 {
		t.Fatalf("PUT status = %d; body %s", status, body)
	}
	f.mu.Lock()
	delete(f.providers, "team/worker") // the lease lapsed while the control plane was away
	f.mu.Unlock()
	deadline := time.Now().Add(3 * time.Second)
	for {
		f.mu.Lock()
		_, ok := f.providers["team/worker"]
		f.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registration not re-created within 3s; calls %q", f.Calls())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
