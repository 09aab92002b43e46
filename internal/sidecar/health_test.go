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

// TestReadyzWait: GET /readyz?wait= on a sidecar without its first snapshot
// answers 200 as soon as the snapshot arrives, and 503 when wait runs out.
func TestReadyzWait(t *testing.T) {
	f := newFakeCP(t)
	ts := startSidecar(t, testConfig(f))
	f.nextHello(t)

	start := time.Now()
	status, _, _ := do(t, "GET", ts.url+"/readyz?wait=100ms", "")
	if status != http.StatusServiceUnavailable || time.Since(start) < 100*time.Millisecond {
		t.Errorf("readyz?wait=100ms without a snapshot = %d after %s, want 503 after 100ms", status, time.Since(start))
	}

	answered := make(chan int, 1)
	go func() { status, _, _ := do(t, "GET", ts.url+"/readyz?wait=30s", ""); answered <- status }()
	time.Sleep(50 * time.Millisecond)
	select {
	case s := <-answered:
		t.Fatalf("readyz?wait=30s answered %d before the first snapshot", s)
	default:
	}
	f.push(t, 1, []registry.Binding{dbBinding()}, nil)
	select {
	case s := <-answered:
		if s != http.StatusOK {
			t.Errorf("readyz?wait=30s after the first snapshot = %d, want 200", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("readyz?wait=30s did not answer within 5s of the first snapshot")
	}

	for _, bad := range []string{"soon", "-1s", "6m"} {
		status, body, _ := do(t, "GET", ts.url+"/readyz?wait="+bad, "")
		if p := problemOf(t, body); status != http.StatusBadRequest || !strings.Contains(p.Detail, "wait=") {
			t.Errorf("readyz?wait=%s = %d %s, want 400 naming wait", bad, status, body)
		}
	}
}

// TestReadyzWaitIsBounded: a /readyz?wait long poll counts against
// MaxWaiters like the watches; once ready, it answers at once.
func TestReadyzWaitIsBounded(t *testing.T) {
	defer func(n int64) { MaxWaiters = n }(MaxWaiters)
	MaxWaiters = 1
	f := newFakeCP(t)
	ts := startSidecar(t, testConfig(f))
	f.nextHello(t)

	first := make(chan int, 1)
	hold := func() { go func() { status, _, _ := do(t, "GET", ts.url+"/readyz?wait=30s", ""); first <- status }() }
	hold()
	// Once the long poll holds the only place, a second is refused. Before
	// that, a short probe may take the place for its 50 ms (and answer
	// 503), and the long poll may be the one refused: send it again.
	waitFor(t, "a second readyz?wait refused with 429", func() bool {
		select {
		case s := <-first:
			if s != http.StatusTooManyRequests {
				t.Fatalf("the long readyz?wait answered %d before the first snapshot", s)
			}
			hold()
		default:
		}
		status, _, _ := do(t, "GET", ts.url+"/readyz?wait=50ms", "")
		return status == http.StatusTooManyRequests
	})
	f.push(t, 1, []registry.Binding{dbBinding()}, nil)
	if s := <-first; s != http.StatusOK {
		t.Errorf("the first readyz?wait after the snapshot = %d, want 200", s)
	}
	if status, _, _ := do(t, "GET", ts.url+"/readyz?wait=30s", ""); status != http.StatusOK {
		t.Errorf("readyz?wait on a ready sidecar = %d, want 200 at once", status)
	}
}
