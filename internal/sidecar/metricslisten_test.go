package sidecar

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"ddi.dev/ddi/internal/registry"
)

// TestMetricsListener: the metrics listener serves GET /metrics, with
// names promlint accepts, and nothing of the API.
func TestMetricsListener(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.MetricsListen = addr
	ts := startConnected(t, f, cfg, []registry.Binding{dbBinding()}, nil)
	do(t, "GET", ts.url+"/v1/bindings/db", "")

	code, body, _ := do(t, "GET", "http://"+addr+"/metrics", "")
	if code != http.StatusOK || !strings.Contains(string(body), "ddi_sidecar_snapshot_version 1") ||
		!strings.Contains(string(body), `ddi_sidecar_http_requests_total{code="200",route="GET /v1/bindings/{name}"} 1`) {
		t.Fatalf("GET /metrics on the metrics listener = %d, want 200 with the sidecar's metrics:\n%s", code, body)
	}
	problems, err := promlint.New(strings.NewReader(string(body))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, path := range []string{"/v1/bindings", "/v1/bindings/db", "/readyz", "/v1/invoke/db/"} {
		if code, body, _ := do(t, "GET", "http://"+addr+path, ""); code != http.StatusNotFound || strings.Contains(string(body), "postgres") {
			t.Errorf("GET %s on the metrics listener = %d %s, want 404 and nothing of the API", path, code, body)
		}
	}
}

func TestMetricsListenConfig(t *testing.T) {
	f := newFakeCP(t)
	for _, bad := range []string{"metrics", ":0", ":15020", "127.0.0.1:7471"} {
		cfg := testConfig(f)
		cfg.Listen = "127.0.0.1:7471"
		cfg.MetricsListen = bad
		var fe *registry.FieldError
		if err := cfg.Validate(); !errors.As(err, &fe) || fe.Field != "MetricsListen" {
			t.Errorf("Validate() with MetricsListen %q = %v, want a FieldError for MetricsListen", bad, err)
		}
	}
}
