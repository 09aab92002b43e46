package sidecar

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

func TestStreamSnapshotsAndAcks(t *testing.T) {
	f := newFakeCP(t)
	ts := startSidecar(t, testConfig(f))

	hello := f.nextHello(t)
	want := protocol.Hello{SidecarID: "sc-test", Consumer: registry.Consumer{Namespace: "team", Name: "fn"},
		Dependencies: []string{"db=postgresql@^15", "greeter=greeter"}}
	if diff := cmp.Diff(want, hello); diff != "" {
		t.Errorf("first hello (-want +got):\n%s", diff)
	}

	bindings := []registry.Binding{greeterBinding("http://127.0.0.1:9")}
	ack := f.push(t, 7, bindings, nil)
	if diff := cmp.Diff(protocol.Ack{SidecarID: "sc-test", Version: 7, Hash: protocol.Hash(bindings, nil)}, ack); diff != "" {
		t.Errorf("ack of the first snapshot (-want +got):\n%s", diff)
	}
	if status, body, _ := do(t, "GET", ts.url+"/v1/bindings/greeter", ""); status != 200 {
		t.Errorf("GET greeter after snapshot: %d %s", status, body)
	}

	// An update replaces the whole state.
	ack = f.push(t, 8, []registry.Binding{dbBinding()}, []registry.Unresolved{{Name: "greeter", Selector: "greeter", Reason: "gone"}})
	if ack.Version != 8 {
		t.Errorf("ack version = %d, want 8", ack.Version)
	}
	if status, _, _ := do(t, "GET", ts.url+"/v1/bindings/greeter", ""); status != 404 {
		t.Errorf("GET greeter after it went away: status %d, want 404", status)
	}

	// Heartbeats are not acknowledged.
	f.msgs <- protocol.Message{Type: protocol.TypeHeartbeat}
	select {
	case a := <-f.acks:
		t.Errorf("heartbeat acknowledged: %+v", a)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestStreamReconnectResumes(t *testing.T) {
	f := newFakeCP(t)
	ts := startSidecar(t, testConfig(f))
	f.nextHello(t)
	bindings := []registry.Binding{greeterBinding("http://127.0.0.1:9")}
	first := f.push(t, 5, bindings, nil)

	f.drop <- struct{}{}
	hello := f.nextHello(t)
	if hello.ResumeVersion != first.Version || hello.ResumeHash != first.Hash {
		t.Errorf("resume = %d/%s, want the acked %d/%s", hello.ResumeVersion, hello.ResumeHash, first.Version, first.Hash)
	}
	f.msgs <- protocol.Message{Type: protocol.TypeUnchanged, Version: 5, Hash: first.Hash}
	if ack := f.nextAck(t); ack.Version != 5 || ack.Hash != first.Hash {
		t.Errorf("ack of unchanged = %+v, want version 5 and the same hash", ack)
	}
	if status, _, _ := do(t, "GET", ts.url+"/v1/bindings/greeter", ""); status != 200 {
		t.Errorf("GET greeter after resume: status %d, want 200", status)
	}
	waitFor(t, "connected again", func() bool { c, _, _ := ts.stream.status(); return c })
}

func TestStreamErrorMessageReconnects(t *testing.T) {
	f := newFakeCP(t)
	ts := startSidecar(t, testConfig(f))
	f.nextHello(t)
	f.msgs <- protocol.Message{Type: protocol.TypeError, Error: "dependency \"x\" is bad"}
	f.nextHello(t)
	_, _, lastErr := ts.stream.status()
	if !strings.Contains(lastErr, "dependency \"x\" is bad") {
		t.Errorf("last error = %q, want the control plane's message", lastErr)
	}
}

func TestStreamKeepsServingWhenControlPlaneDies(t *testing.T) {
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding("http://127.0.0.1:9")}, nil)
	waitFor(t, "connected", func() bool { c, _, _ := ts.stream.status(); return c })
	assertConnectedMetric(t, ts.url, 1)

	f.srv.CloseClientConnections()
	f.srv.Close()
	waitFor(t, "disconnected", func() bool { c, _, _ := ts.stream.status(); return !c })

	if status, body, _ := do(t, "GET", ts.url+"/v1/bindings/greeter", ""); status != 200 {
		t.Errorf("GET greeter with the control plane gone: %d %s, want 200", status, body)
	}
	status, body, _ := do(t, "GET", ts.url+"/readyz", "")
	var r readiness
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || !r.Ready || r.Connected || r.SnapshotVersion != 1 || !strings.Contains(r.Detail, "unreachable") || !strings.Contains(r.Detail, "serving last snapshot") {
		t.Errorf("readyz = %d %+v, want 200, ready, not connected, version 1, detail saying unreachable and serving the last snapshot", status, r)
	}
	assertConnectedMetric(t, ts.url, 0)
	waitFor(t, "reconnect attempts", func() bool { return metricValue(t, ts.url, "ddi_sidecar_stream_reconnects_total") >= 2 })
}

func TestStreamSilenceReconnects(t *testing.T) {
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	startSidecar(t, cfg)
	f.nextHello(t)
	f.push(t, 1, nil, nil)
	start := time.Now()
	f.nextHello(t) // nothing more is sent: the watchdog drops the stream
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("reconnected after %s, want at least the 100ms heartbeat timeout", d)
	}
}

func assertConnectedMetric(t *testing.T, url string, want float64) {
	t.Helper()
	if got := metricValue(t, url, "ddi_sidecar_control_plane_connected"); got != want {
		t.Errorf("ddi_sidecar_control_plane_connected = %v, want %v", got, want)
	}
}

// metricValue reads one unlabelled metric from /metrics (-1 if absent).
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	_, body, _ := do(t, "GET", url+"/metrics", "")
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return -1
}

func TestStreamBacksOff(t *testing.T) {
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.ControlPlane = closedURL(t)
	cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 80*time.Millisecond
	start := time.Now()
	ts := startSidecar(t, cfg)
	// It keeps trying...
	waitFor(t, "two reconnect attempts", func() bool { return metricValue(t, ts.url, "ddi_sidecar_stream_reconnects_total") >= 2 })
	time.Sleep(300 * time.Millisecond)
	n := metricValue(t, ts.url, "ddi_sidecar_stream_reconnects_total")
	// ...but never faster than the backoff floor allows (without backoff a
	// refused dial is retried thousands of times a second).
	if limit := float64(time.Since(start)/cfg.ReconnectMin) + 1; n > limit {
		t.Errorf("reconnect attempts in %s = %v, want at most %v", time.Since(start), n, limit)
	}
	status, _, _ := do(t, "GET", ts.url+"/readyz", "")
	if status != http.StatusServiceUnavailable {
		t.Errorf("readyz before any snapshot = %d, want 503", status)
	}
}
