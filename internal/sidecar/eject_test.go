package sidecar

import (
	"strings"
	"testing"

	"ddi.dev/ddi/internal/registry"
)

// TestInvokeReachesRecoveredEjectedEndpoint is the case the chaos test
// (test/e2e/chaos_test.go) found: an endpoint ejected while it failed has
// recovered, and the other endpoint goes down. Every invocation must reach
// the recovered one, by a retry while the other is still available and
// once both are ejected, instead of failing while an endpoint is up.
func TestInvokeReachesRecoveredEjectedEndpoint(t *testing.T) {
	tests := []struct {
		name string
		// down takes b away: a refused connection (retried) or 5xx answers
		// (relayed, not retried), until b is ejected too.
		down func(t *testing.T, b *backend)
	}{
		{name: "other endpoint refuses connections", down: func(t *testing.T, b *backend) { b.Close() }},
		{name: "other endpoint answers 500", down: func(t *testing.T, b *backend) { b.status.Store(500) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCP(t)
			a, b := newBackend(t, "a"), newBackend(t, "b")
			ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(a.URL, b.URL)}, nil)

			a.status.Store(500)
			for range 2 * ejectAfter { // round robin: the fifth 500 ejects a
				do(t, "GET", ts.url+"/v1/invoke/greeter/", "")
			}
			if !strings.Contains(ts.logs.String(), "endpoint ejected") {
				t.Fatal("a was not ejected")
			}
			a.status.Store(0) // a recovers while ejected
			tt.down(t, b)

			for i := range 4 * ejectAfter {
				status, body, _ := do(t, "GET", ts.url+"/v1/invoke/greeter/", "")
				if status == 200 && strings.HasPrefix(string(body), "a ") {
					continue
				}
				// A 500 relayed from b is b's answer, not a failure to
				// reach a; it may happen until b is ejected.
				if status == 500 && strings.HasPrefix(string(body), "b ") && i < 2*ejectAfter {
					continue
				}
				t.Fatalf("invoke %d after a recovered = %d %s, want 200 from a", i, status, body)
			}
			for range 3 {
				if status, body, _ := do(t, "GET", ts.url+"/v1/invoke/greeter/", ""); status != 200 || !strings.HasPrefix(string(body), "a ") {
					t.Fatalf("invoke once b is ejected = %d %s, want 200 from a", status, body)
				}
			}
		})
	}
}
