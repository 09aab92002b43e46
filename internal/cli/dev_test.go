package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
)

// TestDevLoopbackGuard proves that `ddi dev`'s control plane, which trusts
// every caller, answers only requests addressed to a loopback name (DNS
// rebinding), from no web page of another site, and with JSON bodies only
// (a cross-site text/plain POST is a simple request a page may send).
func TestDevLoopbackGuard(t *testing.T) {
	cp := startTestControlPlane(t)
	const provider = `{"type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}]}`
	const resolve = `{"consumer":{"name":"fn"},"dependency":"g=http@*"}`
	const hello = `{"sidecarID":"sc-1","consumer":{"name":"fn"}}`
	asJSON := []string{"Content-Type", "application/json"}
	tests := []struct {
		name       string
		method     string
		path       string
		host       string
		header     []string
		body       string
		wantStatus int
		wantField  string
	}{
		{name: "list on loopback", method: "GET", path: "/v1/providers", wantStatus: 200},
		{name: "list on localhost", method: "GET", path: "/v1/providers", host: "localhost:7470", wantStatus: 200},
		{name: "list on a rebound name", method: "GET", path: "/v1/providers", host: "attacker.example:7470", wantStatus: 421, wantField: "Host"},
		{name: "write on a rebound name", method: "PUT", path: "/v1/providers/default/evil", host: "attacker.example", header: asJSON, body: provider, wantStatus: 421, wantField: "Host"},
		{name: "write from another site", method: "PUT", path: "/v1/providers/default/evil", header: append([]string{"Origin", "https://attacker.example"}, asJSON...), body: provider, wantStatus: 403, wantField: "Origin"},
		{name: "resolve from another site", method: "POST", path: "/v1/resolve", header: append([]string{"Origin", "https://attacker.example"}, asJSON...), body: resolve, wantStatus: 403, wantField: "Origin"},
		{name: "text/plain resolve", method: "POST", path: "/v1/resolve", header: []string{"Content-Type", "text/plain;charset=UTF-8"}, body: resolve, wantStatus: 415, wantField: "Content-Type"},
		{name: "text/plain write", method: "PUT", path: "/v1/providers/default/evil", header: []string{"Content-Type", "text/plain"}, body: provider, wantStatus: 415, wantField: "Content-Type"},
		{name: "renew without a content type", method: "POST", path: "/v1/providers/default/evil/renew", body: `{"ttl":"30s"}`, wantStatus: 415, wantField: "Content-Type"},
		{name: "text/plain stream hello", method: "POST", path: protocol.StreamPath, header: []string{"Content-Type", "text/plain"}, body: hello, wantStatus: 415, wantField: "Content-Type"},
		{name: "form ack", method: "POST", path: protocol.AckPath, header: []string{"Content-Type", "application/x-www-form-urlencoded"}, body: `{"sidecarID":"sc-1"}`, wantStatus: 415, wantField: "Content-Type"},
		{name: "JSON write", method: "PUT", path: "/v1/providers/default/good", header: asJSON, body: provider, wantStatus: 201},
		{name: "JSON resolve", method: "POST", path: "/v1/resolve", header: asJSON, body: resolve, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, cp+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				// Not reading the body: an accepted stream hello never ends.
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.wantStatus)
			}
			body, _ := io.ReadAll(resp.Body)
			if tt.wantField == "" {
				return
			}
			var p httpapi.Problem
			if err := json.Unmarshal(body, &p); err != nil || p.Field != tt.wantField {
				t.Errorf("problem = %s (%v), want one naming %s", body, err, tt.wantField)
			}
		})
	}
	out, _, err := run(t, "--control-plane", cp, "provider", "get", "evil")
	if err == nil {
		t.Errorf("provider get evil = %q; a refused write was stored", out)
	}
}
