package sidecar

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"ddi.dev/ddi/internal/registry"
)

// TestInvokeStaysUnderBasePath proves that no invoke path reaches a path of
// the provider outside its endpoint's base path: dot segments, in any
// spelling, are refused before anything is forwarded.
func TestInvokeStaysUnderBasePath(t *testing.T) {
	f := newFakeCP(t)
	be := newBackend(t, "api")
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(be.URL + "/api/v1")}, nil)
	tests := []struct {
		name     string
		path     string // after /v1/invoke/greeter
		wantSeen string // the provider's path; "" when refused with 400
	}{
		{name: "plain", path: "/users/7", wantSeen: "/api/v1/users/7"},
		{name: "no path", path: "", wantSeen: "/api/v1/"},
		{name: "dots inside names", path: "/a..b/.c/..d/e.", wantSeen: "/api/v1/a..b/.c/..d/e."},
		{name: "dots in the query", path: "/x?next=../../admin", wantSeen: "/api/v1/x"},
		{name: "parent segments", path: "/../../admin"},
		{name: "parent segment at the end", path: "/users/.."},
		{name: "parent segment in the middle", path: "/users/../../../admin"},
		{name: "escaped parent segments", path: "/%2e%2e/%2E%2E/admin"},
		{name: "half-escaped parent segment", path: "/.%2e/admin"},
		{name: "escaped slashes around a parent segment", path: "/a%2F..%2F..%2Fadmin"},
		{name: "backslash parent segment", path: "/..%5C..%5Cadmin"},
		{name: "current segment", path: "/./admin"},
		{name: "escaped current segment", path: "/%2e/admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := be.hits.Load()
			status, body, _ := do(t, "GET", ts.url+"/v1/invoke/greeter"+tt.path, "")
			if tt.wantSeen == "" {
				if status != http.StatusBadRequest {
					seen := ""
					if r := be.last.Load(); r != nil {
						seen = r.URL.Path
					}
					t.Fatalf("GET %s = %d (provider saw %q), want 400; body %s", tt.path, status, seen, body)
				}
				if p := problemOf(t, body); p.Field != "path" || p.Dependency != "greeter" {
					t.Errorf("problem field, dependency = %q, %q, want \"path\", \"greeter\"", p.Field, p.Dependency)
				}
				if be.hits.Load() != before {
					t.Error("a refused path reached the provider")
				}
				return
			}
			if status != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200; body %s", tt.path, status, body)
			}
			if got := be.last.Load().URL.Path; got != tt.wantSeen {
				t.Errorf("provider saw path %q, want %q", got, tt.wantSeen)
			}
		})
	}
}

// counter is a provider that counts the requests that reach it and then
// breaks the connection: before answering anything, or after the first
// bytes of a status line.
type counter struct {
	*httptest.Server
	arrivals atomic.Int64
}

func newCounter(t *testing.T, partial bool) *counter {
	t.Helper()
	c := &counter{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.arrivals.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if partial {
			_, _ = brw.WriteString("HTTP/1.1 200")
			_ = brw.Flush()
		}
		_ = conn.Close()
	}))
	t.Cleanup(c.Close)
	return c
}

// TestInvokeRetriesOnlyWhatCannotRepeat proves, with providers that count
// arrivals, that an invocation reaches providers more than once only when
// repeating it is harmless: a safe method (GET, HEAD, OPTIONS) before any
// response byte, any other method only when the request was never sent
// (TestInvokeRetries covers connection refused).
func TestInvokeRetriesOnlyWhatCannotRepeat(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		body         string
		partial      bool // the providers send part of a status line
		wantArrivals int64
	}{
		{name: "GET broken before answering is retried", method: "GET", wantArrivals: 2},
		{name: "OPTIONS broken before answering is retried", method: "OPTIONS", wantArrivals: 2},
		{name: "GET broken mid-answer is not retried", method: "GET", partial: true, wantArrivals: 1},
		{name: "HEAD broken mid-answer is not retried", method: "HEAD", partial: true, wantArrivals: 1},
		{name: "PUT without a body is not repeated", method: "PUT", wantArrivals: 1},
		{name: "DELETE without a body is not repeated", method: "DELETE", wantArrivals: 1},
		{name: "PUT with a body is not repeated", method: "PUT", body: "x", wantArrivals: 1},
		{name: "POST is not repeated", method: "POST", body: "x", wantArrivals: 1},
		{name: "POST without a body is not repeated", method: "POST", wantArrivals: 1},
		{name: "PATCH is not repeated", method: "PATCH", body: "x", wantArrivals: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCP(t)
			a, b := newCounter(t, tt.partial), newCounter(t, tt.partial)
			ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(a.URL, b.URL)}, nil)
			status, body, _ := do(t, tt.method, ts.url+"/v1/invoke/greeter/orders/7", tt.body, "Content-Type", "text/plain")
			if status != http.StatusBadGateway {
				t.Errorf("%s = %d, want 502; body %s", tt.method, status, body)
			}
			if got := a.arrivals.Load() + b.arrivals.Load(); got != tt.wantArrivals {
				t.Errorf("%s reached the providers %d times, want %d", tt.method, got, tt.wantArrivals)
			}
		})
	}
}

func TestHasDotSegment(t *testing.T) {
	for path, want := range map[string]bool{
		"": false, "/": false, "/a/b/": false, "/a..": false, "/..a": false, "/.a/b.": false, "//": false, "/...": false,
		"/.": true, "/..": true, "/./": true, "/../": true, "/a/../b": true, "/a/./b": true, `/a\..\b`: true, `/..\`: true, "..": true,
	} {
		if got := hasDotSegment(path); got != want {
			t.Errorf("hasDotSegment(%q) = %v, want %v", path, got, want)
		}
	}
}
