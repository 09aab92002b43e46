package sidecar

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

func TestGetBindings(t *testing.T) {
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding("http://127.0.0.1:9")},
		[]registry.Unresolved{{Name: "db", Selector: "postgresql@^15", Reason: "no provider has type postgresql"}})

	t.Run("list", func(t *testing.T) {
		status, body, h := do(t, "GET", ts.url+"/v1/bindings", "")
		if status != http.StatusOK {
			t.Fatalf("GET /v1/bindings status = %d, want 200; body %s", status, body)
		}
		if got := h.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", got)
		}
		var got struct {
			Bindings   []registry.Binding    `json:"bindings"`
			Unresolved []registry.Unresolved `json:"unresolved"`
			Version    int64                 `json:"version"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		want := greeterBinding("http://127.0.0.1:9")
		if diff := cmp.Diff([]registry.Binding{want}, got.Bindings); diff != "" {
			t.Errorf("bindings (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]registry.Unresolved{{Name: "db", Selector: "postgresql@^15", Reason: "no provider has type postgresql"}}, got.Unresolved); diff != "" {
			t.Errorf("unresolved (-want +got):\n%s", diff)
		}
		if got.Version != 1 {
			t.Errorf("version = %d, want 1", got.Version)
		}
	})

	tests := []struct {
		name       string
		path       string
		method     string
		wantStatus int
		wantType   string // problem type suffix; "" for a binding
		wantField  string
		wantDep    string
		wantSel    string
	}{
		{name: "bound", path: "/v1/bindings/greeter", wantStatus: 200},
		{name: "unresolved", path: "/v1/bindings/db", wantStatus: 404, wantType: "unresolved", wantDep: "db", wantSel: "postgresql@^15"},
		{name: "unknown", path: "/v1/bindings/cache", wantStatus: 404, wantType: "unknown-dependency", wantDep: "cache"},
		{name: "not a DNS-1123 name", path: "/v1/bindings/Bad_Name", wantStatus: 400, wantType: "invalid-field", wantField: "name"},
		{name: "too long a name", path: "/v1/bindings/" + strings.Repeat("a", 64), wantStatus: 400, wantType: "invalid-field", wantField: "name"},
		{name: "negative revision", path: "/v1/bindings/greeter?revision=-1", wantStatus: 400, wantType: "invalid-field", wantField: "revision"},
		{name: "revision not a number", path: "/v1/bindings/greeter?revision=x", wantStatus: 400, wantType: "invalid-field", wantField: "revision"},
		{name: "wait without revision", path: "/v1/bindings/greeter?wait=1s", wantStatus: 400, wantType: "invalid-field", wantField: "revision"},
		{name: "wait too long", path: "/v1/bindings/greeter?revision=1&wait=6m", wantStatus: 400, wantType: "invalid-field", wantField: "wait"},
		{name: "wait negative", path: "/v1/bindings/greeter?revision=1&wait=-1s", wantStatus: 400, wantType: "invalid-field", wantField: "wait"},
		{name: "wait garbage", path: "/v1/bindings/greeter?revision=1&wait=soon", wantStatus: 400, wantType: "invalid-field", wantField: "wait"},
		{name: "wrong method", path: "/v1/bindings/greeter", method: "POST", wantStatus: 405, wantType: "method-not-allowed"},
		{name: "unknown route", path: "/v2/nothing", wantStatus: 404, wantType: "not-found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			status, body, h := do(t, method, ts.url+tt.path, "")
			if status != tt.wantStatus {
				t.Fatalf("%s %s status = %d, want %d; body %s", method, tt.path, status, tt.wantStatus, body)
			}
			if tt.wantType == "" {
				var b registry.Binding
				if err := json.Unmarshal(body, &b); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(greeterBinding("http://127.0.0.1:9"), b); diff != "" {
					t.Errorf("binding (-want +got):\n%s", diff)
				}
				return
			}
			if got := h.Get("Content-Type"); got != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", got)
			}
			p := problemOf(t, body)
			if got, want := p.Type, "https://ddi.dev/problems/"+tt.wantType; got != want {
				t.Errorf("type = %q, want %q", got, want)
			}
			if p.Status != tt.wantStatus {
				t.Errorf("problem status = %d, want %d", p.Status, tt.wantStatus)
			}
			if p.Field != tt.wantField {
				t.Errorf("field = %q, want %q", p.Field, tt.wantField)
			}
			if p.Dependency != tt.wantDep || p.Selector != tt.wantSel {
				t.Errorf("dependency, selector = %q, %q, want %q, %q", p.Dependency, p.Selector, tt.wantDep, tt.wantSel)
			}
		})
	}
}

func TestBindingsBeforeFirstSnapshot(t *testing.T) {
	f := newFakeCP(t)
	ts := startSidecar(t, testConfig(f))
	f.nextHello(t)
	for _, path := range []string{"/v1/bindings", "/v1/bindings/greeter", "/readyz"} {
		status, body, _ := do(t, "GET", ts.url+path, "")
		if status != http.StatusServiceUnavailable {
			t.Errorf("GET %s status = %d, want 503; body %s", path, status, body)
		}
	}
}

func TestLongPoll(t *testing.T) {
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding("http://127.0.0.1:9")}, nil)

	t.Run("returns at once when the revision is already newer", func(t *testing.T) {
		status, body, _ := do(t, "GET", ts.url+"/v1/bindings/greeter?revision=0&wait=5s", "")
		if status != 200 || !strings.Contains(string(body), `"revision":1`) {
			t.Errorf("status, body = %d, %s, want 200 with revision 1", status, body)
		}
	})

	t.Run("returns on timeout with the current binding", func(t *testing.T) {
		start := time.Now()
		status, body, _ := do(t, "GET", ts.url+"/v1/bindings/greeter?revision=1&wait=150ms", "")
		if status != 200 || !strings.Contains(string(body), `"revision":1`) {
			t.Errorf("status, body = %d, %s, want 200 with revision 1", status, body)
		}
		if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
			t.Errorf("long poll took %s, want about 150ms", d)
		}
	})

	t.Run("returns on change", func(t *testing.T) {
		type result struct {
			status int
			body   []byte
		}
		done := make(chan result, 1)
		go func() {
			status, body, _ := do(t, "GET", ts.url+"/v1/bindings/greeter?revision=1&wait=10s", "")
			done <- result{status, body}
		}()
		time.Sleep(100 * time.Millisecond)
		select {
		case r := <-done:
			t.Fatalf("long poll returned before any change: %d %s", r.status, r.body)
		default:
		}
		changed := greeterBinding("http://127.0.0.1:10")
		changed.Revision = 2
		f.push(t, 2, []registry.Binding{changed}, nil)
		select {
		case r := <-done:
			var b registry.Binding
			if err := json.Unmarshal(r.body, &b); err != nil {
				t.Fatal(err)
			}
			if r.status != 200 || b.Revision != 2 || b.Endpoints[0].URL != "http://127.0.0.1:10" {
				t.Errorf("long poll = %d %s, want 200 with revision 2 and the new endpoint", r.status, r.body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("long poll did not return within 5s of the change")
		}
	})

	t.Run("waits for an unresolved dependency to appear", func(t *testing.T) {
		done := make(chan int, 1)
		go func() {
			status, _, _ := do(t, "GET", ts.url+"/v1/bindings/db?revision=0&wait=10s", "")
			done <- status
		}()
		time.Sleep(50 * time.Millisecond)
		changed := greeterBinding("http://127.0.0.1:10")
		changed.Revision = 2
		f.push(t, 3, []registry.Binding{dbBinding(), changed}, nil)
		select {
		case status := <-done:
			if status != 200 {
				t.Errorf("long poll status = %d, want 200", status)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("long poll did not return within 5s of the binding appearing")
		}
	})

	t.Run("unresolved at timeout is a 404", func(t *testing.T) {
		status, body, _ := do(t, "GET", ts.url+"/v1/bindings/cache?revision=0&wait=50ms", "")
		if status != 404 {
			t.Errorf("status = %d, want 404; body %s", status, body)
		}
	})
}
