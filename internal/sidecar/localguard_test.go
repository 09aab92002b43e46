package sidecar

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"ddi.dev/ddi/internal/registry"
)

// TestLoopbackGuard proves that the sidecar's API answers only requests
// addressed to a loopback name (DNS rebinding), from no web page of another
// site (Origin), and that its JSON routes take JSON only (a cross-site form
// or text/plain POST), while the invoke proxy forwards any body.
func TestLoopbackGuard(t *testing.T) {
	f := newFakeCP(t)
	be := newBackend(t, "greeter")
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(be.URL)}, nil)
	const register = `{"type":"http","endpoints":[{"url":"http://127.0.0.1:9001"}]}`
	tests := []struct {
		name        string
		method      string
		path        string
		host        string // "" keeps the listener's address
		header      []string
		body        string
		wantStatus  int
		wantField   string // of the problem, when the guard refuses
		wantBackend bool   // the invoke reached the provider
	}{
		{name: "loopback address", method: "GET", path: "/v1/bindings", wantStatus: 200},
		{name: "localhost with a port", method: "GET", path: "/v1/bindings", host: "localhost:7471", wantStatus: 200},
		{name: "localhost without a port", method: "GET", path: "/v1/bindings", host: "localhost", wantStatus: 200},
		{name: "another loopback address", method: "GET", path: "/v1/bindings", host: "127.0.0.2:80", wantStatus: 200},
		{name: "IPv6 loopback", method: "GET", path: "/v1/bindings", host: "[::1]:7471", wantStatus: 200},
		{name: "rebound name", method: "GET", path: "/v1/bindings/db", host: "attacker.example:7471", wantStatus: 421, wantField: "Host"},
		{name: "rebound name without a port", method: "GET", path: "/v1/bindings", host: "attacker.example", wantStatus: 421, wantField: "Host"},
		{name: "name that merely starts with localhost", method: "GET", path: "/v1/bindings", host: "localhost.attacker.example", wantStatus: 421, wantField: "Host"},
		{name: "non-loopback address", method: "GET", path: "/v1/bindings", host: "10.0.0.7:7471", wantStatus: 421, wantField: "Host"},
		{name: "rebound name on invoke", method: "GET", path: "/v1/invoke/greeter/", host: "attacker.example:7471", wantStatus: 421, wantField: "Host"},
		{name: "rebound name on register", method: "PUT", path: "/v1/providers/worker", host: "attacker.example", header: []string{"Content-Type", "application/json"}, body: register, wantStatus: 421, wantField: "Host"},
		{name: "cross-site origin on bindings", method: "GET", path: "/v1/bindings", header: []string{"Origin", "https://attacker.example"}, wantStatus: 403, wantField: "Origin"},
		{name: "opaque origin", method: "GET", path: "/v1/bindings", header: []string{"Origin", "null"}, wantStatus: 403, wantField: "Origin"},
		{name: "cross-site origin on register", method: "PUT", path: "/v1/providers/worker", header: []string{"Origin", "http://attacker.example", "Content-Type", "application/json"}, body: register, wantStatus: 403, wantField: "Origin"},
		{name: "cross-site origin on invoke", method: "POST", path: "/v1/invoke/greeter/pay", header: []string{"Origin", "http://attacker.example", "Content-Type", "text/plain"}, body: "x", wantStatus: 403, wantField: "Origin"},
		{name: "origin that is a loopback name", method: "GET", path: "/v1/bindings", header: []string{"Origin", "http://localhost:3000"}, wantStatus: 200},
		{name: "text/plain registration", method: "PUT", path: "/v1/providers/worker", header: []string{"Content-Type", "text/plain"}, body: register, wantStatus: 415, wantField: "Content-Type"},
		{name: "form registration", method: "PUT", path: "/v1/providers/worker", header: []string{"Content-Type", "application/x-www-form-urlencoded"}, body: register, wantStatus: 415, wantField: "Content-Type"},
		{name: "registration without a content type", method: "PUT", path: "/v1/providers/worker", body: register, wantStatus: 415, wantField: "Content-Type"},
		{name: "JSON look-alike type", method: "PUT", path: "/v1/providers/worker", header: []string{"Content-Type", "application/jsonp"}, body: register, wantStatus: 415, wantField: "Content-Type"},
		{name: "JSON with parameters", method: "PUT", path: "/v1/providers/worker", header: []string{"Content-Type", "Application/JSON; charset=utf-8"}, body: register, wantStatus: 201},
		{name: "invoke forwards text/plain", method: "POST", path: "/v1/invoke/greeter/pay", header: []string{"Content-Type", "text/plain"}, body: "x", wantStatus: 200, wantBackend: true},
		{name: "invoke forwards a body without a content type", method: "POST", path: "/v1/invoke/greeter/pay", body: "x", wantStatus: 200, wantBackend: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hitsBefore := be.hits.Load()
			callsBefore := len(f.Calls())
			status, body := guardDo(t, tt.method, ts.url+tt.path, tt.host, tt.body, tt.header...)
			if status != tt.wantStatus {
				t.Fatalf("%s %s (Host %q) = %d, want %d; body %s", tt.method, tt.path, tt.host, status, tt.wantStatus, body)
			}
			if tt.wantField != "" {
				p := problemOf(t, body)
				if p.Field != tt.wantField {
					t.Errorf("problem field = %q, want %q (detail %q)", p.Field, tt.wantField, p.Detail)
				}
				if !strings.Contains(p.Detail, "127.0.0.1") {
					t.Errorf("problem detail %q does not say how to call the API instead", p.Detail)
				}
				if calls := f.Calls()[callsBefore:]; len(calls) != 0 {
					t.Errorf("refused request reached the control plane: %q", calls)
				}
			}
			if reached := be.hits.Load() > hitsBefore; reached != tt.wantBackend {
				t.Errorf("request reached the provider = %v, want %v", reached, tt.wantBackend)
			}
		})
	}
}

// guardDo sends a request with an optional Host header of its own.
func guardDo(t *testing.T, method, url, host, body string, header ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
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
	return resp.StatusCode, b
}
