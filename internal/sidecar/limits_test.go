package sidecar

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/registry"
)

// TestClientLimits drives the real sidecar listener past each limit a
// client controls and checks the clear refusal.
func TestClientLimits(t *testing.T) {
	f := newFakeCP(t)
	be := newBackend(t, "greeter")
	saveWaiters, saveBody := MaxWaiters, httpapi.BodyTimeout
	MaxWaiters, httpapi.BodyTimeout = 2, 300*time.Millisecond
	t.Cleanup(func() { MaxWaiters, httpapi.BodyTimeout = saveWaiters, saveBody })
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(be.URL)}, nil)
	addr := strings.TrimPrefix(ts.url, "http://")

	t.Run("headers beyond MaxHeaderBytes: 431", func(t *testing.T) {
		code, _, _ := do(t, "GET", ts.url+"/v1/bindings", "", "X-Padding", strings.Repeat("a", 2*httpapi.MaxHeaderBytes))
		if code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET with %d bytes of headers = %d, want 431", 2*httpapi.MaxHeaderBytes, code)
		}
	})

	t.Run("body over MaxBodyBytes: 413", func(t *testing.T) {
		body := `{"type":"http","config":{"k":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}}`
		code, b, _ := do(t, "PUT", ts.url+"/v1/providers/big", body)
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("PUT of a %d-byte body = %d %s, want 413", len(body), code, b)
		}
	})

	t.Run("a body trickled slower than BodyTimeout: 408, the handler freed", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "PUT /v1/providers/slow HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ty", addr)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer to a trickled body within 5s: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("trickled body = %d, want 408", resp.StatusCode)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("answered after %s, want about BodyTimeout (%s)", took, httpapi.BodyTimeout)
		}
	})

	t.Run("watches and long polls beyond MaxWaiters: 429", func(t *testing.T) {
		// Two watches take both places: a watch answers its headers at once
		// and stays open.
		for range 2 {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", ts.url+"/v1/watch", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("watch = %d, want 200", resp.StatusCode)
			}
		}
		for _, path := range []string{"/v1/watch", "/v1/bindings/greeter?revision=999999999&wait=30s"} {
			code, b, _ := do(t, "GET", ts.url+path, "")
			if code != http.StatusTooManyRequests || !strings.Contains(string(b), "2 watches and long polls") {
				t.Errorf("GET %s with both places taken = %d %s, want 429 naming the bound", path, code, b)
			}
		}
		// Plain reads are not bounded by it.
		if code, _, _ := do(t, "GET", ts.url+"/v1/bindings/greeter", ""); code != http.StatusOK {
			t.Errorf("GET binding while the waiters are full = %d, want 200", code)
		}
	})
}
