package sidecar

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// stopAsync begins a sidecar's shutdown (its SIGTERM) and reports when
// Serve has returned.
func stopAsync(ts *testSidecar) <-chan time.Time {
	done := make(chan time.Time, 1)
	go func() { ts.stop(); done <- time.Now() }()
	return done
}

// callForASecond GETs url every 100 ms for a second, during a shutdown,
// and fails the test unless every answer is 200.
func callForASecond(t *testing.T, url string) {
	t.Helper()
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		if code, body, _ := do(t, http.MethodGet, url, ""); code != http.StatusOK {
			t.Fatalf("GET %s during the shutdown = %d %s, want 200", url, code, body)
		}
	}
}

// TestOutliveAppWaitsForTheFunctionsPort: after SIGTERM a sidecar with
// OutliveApp keeps serving while the function's port accepts connections,
// and stops once it has been closed for OutliveQuiet.
func TestOutliveAppWaitsForTheFunctionsPort(t *testing.T) {
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.OutliveApp = true
	cfg.AppPorts = []int{app.Addr().(*net.TCPAddr).Port}
	cfg.OutliveQuiet = 200 * time.Millisecond
	ts := startConnected(t, f, cfg, []registry.Binding{greeterBinding("http://127.0.0.1:9")}, nil)

	stopped := stopAsync(ts)
	callForASecond(t, ts.url+"/v1/bindings/greeter")
	select {
	case <-stopped:
		t.Fatal("the sidecar stopped while the function's port still accepted connections")
	default:
	}
	closed := time.Now()
	app.Close()
	select {
	case at := <-stopped:
		if d := at.Sub(closed); d < cfg.OutliveQuiet {
			t.Errorf("the sidecar stopped %s after the function's port closed, want at least OutliveQuiet (%s)", d, cfg.OutliveQuiet)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sidecar did not stop within 5s of the function's port closing")
	}
}

// TestOutliveAppWaitsForRequests: without ports to watch, the sidecar
// stops only once its API has been idle for OutliveQuiet; a function that
// keeps calling it keeps it up.
func TestOutliveAppWaitsForRequests(t *testing.T) {
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.OutliveApp = true
	cfg.OutliveQuiet = 300 * time.Millisecond
	ts := startConnected(t, f, cfg, []registry.Binding{greeterBinding("http://127.0.0.1:9")}, nil)

	stopped := stopAsync(ts)
	callForASecond(t, ts.url+"/v1/bindings/greeter")
	last := time.Now()
	select {
	case at := <-stopped:
		if d := at.Sub(last); d < cfg.OutliveQuiet-50*time.Millisecond {
			t.Errorf("the sidecar stopped %s after the last request, want about OutliveQuiet (%s)", d, cfg.OutliveQuiet)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sidecar did not stop within 5s of the last request")
	}
}

func TestOutliveAppConfig(t *testing.T) {
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.AppPorts = []int{8080, 70000}
	err := cfg.Validate()
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Field != "AppPorts[1]" {
		t.Errorf("Validate() with app port 70000 = %v, want a FieldError for AppPorts[1]", err)
	}
}

// TestOutliveAppCountsInvocations: calls through the invoke fast path keep
// the sidecar up after SIGTERM as API requests do.
func TestOutliveAppCountsInvocations(t *testing.T) {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer provider.Close()
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.OutliveApp = true
	cfg.OutliveQuiet = 300 * time.Millisecond
	ts := startConnected(t, f, cfg, []registry.Binding{greeterBinding(provider.URL)}, nil)

	stopped := stopAsync(ts)
	callForASecond(t, ts.url+"/v1/invoke/greeter/")
	select {
	case <-stopped:
		t.Fatal("the sidecar stopped while the function kept invoking through it")
	default:
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the sidecar did not stop within 5s of the last invocation")
	}
}
