package sidecar

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"ddi.dev/ddi/internal/registry"
)

// TestInvokeTracing runs a sidecar with OTEL_EXPORTER_OTLP_ENDPOINT aimed
// at a real OTLP/HTTP receiver (decoding with the OTLP protobuf package's
// strict JSON mapping), with a header from OTEL_EXPORTER_OTLP_HEADERS: every invocation, on the fast path and on
// the net/http path, exports one client span that is a child of the
// caller's traceparent, and the provider's traceparent names that span.
func TestInvokeTracing(t *testing.T) {
	type ids struct{ TraceID, SpanID, ParentSpanID string }
	type exported struct {
		span *tracepb.Span
		ids  ids // as sent: OTLP/JSON ids are hex, not proto3 JSON's base64
	}
	spans := make(chan exported, 16)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if got := r.Header.Get("X-Tenant"); got != "team a" {
			t.Errorf("export header X-Tenant = %q, want \"team a\" (OTEL_EXPORTER_OTLP_HEADERS)", got)
		}
		// Strict OTLP/JSON decoding: an unknown field or a wrong type
		// fails, as it would in a collector.
		var req coltracepb.ExportTraceServiceRequest
		if err := protojson.Unmarshal(body, &req); r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/json" || err != nil {
			t.Errorf("bad export to %s (%s): %v: %s", r.URL.Path, r.Header.Get("Content-Type"), err, body)
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		var raw struct {
			ResourceSpans []struct{ ScopeSpans []struct{ Spans []ids } }
		}
		_ = json.Unmarshal(body, &raw)
		for i, rs := range req.ResourceSpans {
			for j, ss := range rs.ScopeSpans {
				for k, sp := range ss.Spans {
					spans <- exported{sp, raw.ResourceSpans[i].ScopeSpans[j].Spans[k]}
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	}))
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team%20a")

	seen := make(chan string, 16)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("traceparent") + " " + r.Header.Get("tracestate")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(be.Close)
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(be.URL)}, nil)
	if ts.proxy.tracer == nil {
		t.Fatal("no tracer with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tt := range []struct {
		name string
		send func() int
	}{
		{name: "fast path", send: func() int {
			code, _, _ := do(t, "GET", ts.url+"/v1/invoke/greeter/t", "", "traceparent", "00-"+traceID+"-"+parentID+"-01", "tracestate", "congo=t61rcWkgMzE")
			return code
		}},
		{name: "net/http path", send: func() int {
			resp, _ := rawRoundTrip(t, ts, "GET /v1/invoke/greeter/t HTTP/1.0\r\nHost: 127.0.0.1\r\ntraceparent: 00-"+traceID+"-"+parentID+"-01\r\ntracestate: congo=t61rcWkgMzE\r\n\r\n")
			return resp.StatusCode
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code := tt.send(); code != 200 {
				t.Fatalf("invoke = %d, want 200", code)
			}
			var e exported
			select {
			case e = <-spans:
			case <-time.After(10 * time.Second):
				t.Fatal("no span exported within 10s")
			}
			sp := e.span
			if got := e.ids.TraceID; got != traceID {
				t.Errorf("span trace id = %s, want the caller's %s", got, traceID)
			}
			if got := e.ids.ParentSpanID; got != parentID {
				t.Errorf("span parent = %s, want the caller's span %s", got, parentID)
			}
			if sp.Kind != tracepb.Span_SPAN_KIND_CLIENT || sp.Name != "invoke greeter" {
				t.Errorf("span kind, name = %v, %q, want CLIENT, \"invoke greeter\"", sp.Kind, sp.Name)
			}
			attrs := map[string]string{}
			for _, kv := range sp.Attributes {
				attrs[kv.Key] = strings.Trim(kv.Value.String(), " ")
			}
			for k, want := range map[string]string{"ddi.dependency": "greeter", "ddi.invoke.result": "ok", "http.response.status_code": "200"} {
				if !strings.Contains(attrs[k], want) {
					t.Errorf("span attribute %s = %q, want %s", k, attrs[k], want)
				}
			}
			want := "00-" + traceID + "-" + e.ids.SpanID + "-01 congo=t61rcWkgMzE"
			if got := <-seen; got != want {
				t.Errorf("provider's trace context = %q, want %q (the sidecar's span as parent)", got, want)
			}
		})
	}
}

// TestInvokeTracingOff checks that without OTEL_* variables the sidecar
// has no tracer (no exporter, no batch goroutine) and the caller's trace
// context reaches the provider untouched (TestRelayHopByHopAndForwarded).
func TestInvokeTracingOff(t *testing.T) {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(v, "")
	}
	f := newFakeCP(t)
	ts := startSidecar(t, testConfig(f))
	if ts.proxy.tracer != nil {
		t.Error("a tracer without OTEL_* variables")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	if s, err := New(testConfig(f), nil); err != nil || s.proxy.tracer != nil {
		t.Errorf("with OTEL_SDK_DISABLED=true: tracer %v, err %v; want none", s.proxy.tracer, err)
	}
}
