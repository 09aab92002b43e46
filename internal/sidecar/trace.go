package sidecar

import (
	"context"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Trace context. Without OpenTelemetry configured, traceparent and
// tracestate pass through the invoke proxy untouched and the sidecar
// creates nothing (tracer is nil: one comparison per invocation). With
// the standard variables set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, and the others the SDK reads:
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER,
// OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS...), the sidecar exports one
// client span per invocation over OTLP/HTTP, a child of the caller's
// traceparent, and the provider receives that span as its parent. Spans
// are sent as OTLP/JSON (otlp.go), which every OTLP/HTTP receiver accepts:
// OpenTelemetry's protobuf exporter would add 8 MB to the binary and
// 4 MiB to the sidecar's idle memory, traced or not.

// invokeTracer makes the invoke spans.
type invokeTracer struct {
	tracer   trace.Tracer
	prop     propagation.TraceContext
	provider *sdktrace.TracerProvider
}

// newInvokeTracer returns the tracer the environment asks for, or nil when
// it asks for none.
func newInvokeTracer(log *slog.Logger) *invokeTracer {
	if !tracingConfigured() {
		return nil
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := os.Getenv(v); p != "" && p != "http/protobuf" && p != "http/json" {
			log.Warn("OpenTelemetry tracing off: only OTLP over HTTP is supported", "variable", v, "value", p)
			return nil
		}
	}
	exp, err := newOTLPExporter()
	if err != nil {
		log.Warn("OpenTelemetry tracing off", "err", err)
		return nil
	}
	res := resource.Default()
	if os.Getenv("OTEL_SERVICE_NAME") == "" && !strings.Contains(os.Getenv("OTEL_RESOURCE_ATTRIBUTES"), "service.name=") {
		if r, err := resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", "ddi-sidecar"))); err == nil {
			res = r
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("OpenTelemetry tracing on: a client span per invocation, over OTLP/HTTP")
	return &invokeTracer{tracer: tp.Tracer("ddi.dev/ddi/internal/sidecar"), provider: tp}
}

// tracingConfigured reports whether the OTEL_* variables ask for trace
// export.
func tracingConfigured() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// start begins the client span of an invocation of dependency, as a child
// of the trace context carrier holds, and returns the context that
// carries the span.
func (t *invokeTracer) start(ctx context.Context, carrier propagation.TextMapCarrier, dependency, method string) (context.Context, trace.Span) {
	ctx = t.prop.Extract(ctx, carrier)
	return t.tracer.Start(ctx, "invoke "+dependency, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("ddi.dependency", dependency), attribute.String("http.request.method", method)))
}

// end records the outcome of the invocation on its span and ends it.
func (t *invokeTracer) end(span trace.Span, status int, result string, ep *endpoint) {
	if ep != nil {
		span.SetAttributes(attribute.String("server.address", ep.host), attribute.String("url.full", ep.url))
	}
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	span.SetAttributes(attribute.String("ddi.invoke.result", result))
	if result != resultOK {
		span.SetStatus(codes.Error, result)
	}
	span.End()
}

// shutdown exports the spans still queued.
func (t *invokeTracer) shutdown(ctx context.Context) {
	if t != nil {
		_ = t.provider.Shutdown(ctx)
	}
}

// traceFields is the trace context the fast path sends upstream in place
// of the caller's: a propagation carrier over the request's head.
type traceFields struct {
	in                      *head
	traceparent, tracestate string
}

func (c *traceFields) Get(key string) string {
	var vals []string
	for _, f := range c.in.fields {
		if equalFold(f.name, key) {
			vals = append(vals, string(f.value))
		}
	}
	return strings.Join(vals, ",")
}

func (c *traceFields) Set(key, value string) {
	switch strings.ToLower(key) {
	case "traceparent":
		c.traceparent = value
	case "tracestate":
		c.tracestate = value
	}
}

func (c *traceFields) Keys() []string { return []string{"traceparent", "tracestate"} }
