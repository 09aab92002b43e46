package sidecar

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

func TestHealthAndMetrics(t *testing.T) {
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{dbBinding()}, nil)

	status, body, _ := do(t, "GET", ts.url+"/healthz", "")
	if status != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("healthz = %d %s, want 200 {\"status\":\"ok\"}", status, body)
	}

	waitFor(t, "connected", func() bool { c, _, _ := ts.stream.status(); return c })
	status, body, _ = do(t, "GET", ts.url+"/readyz", "")
	var r readiness
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	r.Detail = strings.Split(r.Detail, " since ")[0]
	if diff := cmp.Diff(readiness{Ready: true, Connected: true, SnapshotVersion: 1, Detail: "connected to the control plane"}, r); status != 200 || diff != "" {
		t.Errorf("readyz = %d, (-want +got):\n%s", status, diff)
	}

	do(t, "GET", ts.url+"/v1/bindings/db", "")
	do(t, "GET", ts.url+"/v1/bindings/nope", "")
	status, body, h := do(t, "GET", ts.url+"/metrics", "")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics = %d %s", status, h.Get("Content-Type"))
	}
	for _, want := range []string{
		"ddi_sidecar_control_plane_connected 1",
		"ddi_sidecar_snapshot_version 1",
		"ddi_sidecar_snapshots_applied_total 1",
		`ddi_sidecar_http_requests_total{code="200",route="GET /v1/bindings/{name}"} 1`,
		`ddi_sidecar_http_requests_total{code="404",route="GET /v1/bindings/{name}"} 1`,
		`ddi_sidecar_http_request_duration_seconds_count{route="GET /v1/bindings/{name}"} 2`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	t.Run("wrong method", func(t *testing.T) {
		status, body, h := do(t, "POST", ts.url+"/healthz", "")
		if status != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, HEAD" || problemOf(t, body).Status != 405 {
			t.Errorf("POST /healthz = %d, Allow %q, %s; want a 405 problem with Allow: GET, HEAD", status, h.Get("Allow"), body)
		}
	})
}

// TestSecretsStayOut drives every path that touches a binding with a
// secret and a registration with a secret, then searches logs, metrics and
// problem details for the secret.
func TestSecretsStayOut(t *testing.T) {
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.BindingRoot = t.TempDir()
	ts := startConnected(t, f, cfg, []registry.Binding{dbBinding()}, nil)

	// The binding itself carries the secret (the function is in scope), so
	// there is something to leak.
	if _, body, _ := do(t, "GET", ts.url+"/v1/bindings/db", ""); !strings.Contains(string(body), testSecret) {
		t.Fatalf("GET /v1/bindings/db = %s, want the secret in the binding", body)
	}
	var exposed []string
	check := func(what string, b []byte) {
		if strings.Contains(string(b), testSecret) {
			exposed = append(exposed, what)
		}
	}
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/v1/invoke/db/x", ""},
		{"GET", "/v1/bindings/db?revision=x", ""},
		{"PUT", "/v1/providers/worker", `{"type":"http","secret":{"token":"` + testSecret + `"},"ttl":"-1s"}`},
		{"PUT", "/v1/providers/worker", `{"type":"http","secret":{"token":"` + testSecret + `"},"bogus":1}`},
		{"PUT", "/v1/providers/worker", `{"type":"http","secret":{"token":"` + testSecret + `"}}`},
		{"PUT", "/v1/providers/worker", `{"type":"http","endpoints":[{"url":"http://u:` + testSecret + `@"}]}`},
		{"DELETE", "/v1/providers/worker", ""},
	} {
		_, body, _ := do(t, req.method, ts.url+req.path, req.body)
		check(req.method+" "+req.path, body)
	}
	waitFor(t, "files", func() bool { return exists(cfg.BindingRoot + "/db/password") })
	_, body, _ := do(t, "GET", ts.url+"/metrics", "")
	check("metrics", body)
	f.push(t, 2, nil, []registry.Unresolved{{Name: "db", Selector: "postgresql@^15", Reason: "gone"}})
	ts.stop()
	check("logs", []byte(ts.logs.String()))
	if len(exposed) > 0 {
		t.Errorf("the secret reached: %q", exposed)
	}
}
