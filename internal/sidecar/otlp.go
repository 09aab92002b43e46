package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// otlpExporter sends spans to an OTLP/HTTP receiver as JSON (the OTLP
// specification's JSON encoding of ExportTraceServiceRequest).
type otlpExporter struct {
	endpoint string
	headers  http.Header
	client   *http.Client
}

// newOTLPExporter reads the standard variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// (used as is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ "/v1/traces"), the
// _HEADERS and _TIMEOUT variables of either.
func newOTLPExporter() (*otlpExporter, error) {
	endpoint := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = strings.TrimSuffix(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "/") + "/v1/traces"
	}
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q is not an http(s) URL", endpoint)
	}
	e := &otlpExporter{endpoint: endpoint, headers: http.Header{}, client: &http.Client{Timeout: 10 * time.Second}}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		for kv := range strings.SplitSeq(os.Getenv(v), ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			if d, err := url.QueryUnescape(strings.TrimSpace(val)); err == nil {
				val = d
			}
			e.headers.Set(strings.TrimSpace(k), val)
		}
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"} {
		if ms, err := strconv.Atoi(os.Getenv(v)); err == nil && ms > 0 {
			e.client.Timeout = time.Duration(ms) * time.Millisecond
		}
	}
	return e, nil
}

// ExportSpans posts one ExportTraceServiceRequest with spans.
func (e *otlpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	body, err := json.Marshal(otlpRequest(spans))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range e.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return errors.New("OTLP receiver answered " + resp.Status)
	}
	return nil
}

// Shutdown has nothing to release.
func (e *otlpExporter) Shutdown(context.Context) error { return nil }

// The OTLP/JSON shapes (opentelemetry-proto, JSON mapping: ids in hex,
// 64-bit integers as strings, enums as numbers).
type (
	otlpKeyValue struct {
		Key   string    `json:"key"`
		Value otlpValue `json:"value"`
	}
	otlpValue struct {
		String *string  `json:"stringValue,omitempty"`
		Int    *string  `json:"intValue,omitempty"`
		Bool   *bool    `json:"boolValue,omitempty"`
		Double *float64 `json:"doubleValue,omitempty"`
	}
	otlpSpan struct {
		TraceID      string         `json:"traceId"`
		SpanID       string         `json:"spanId"`
		TraceState   string         `json:"traceState,omitempty"`
		ParentSpanID string         `json:"parentSpanId,omitempty"`
		Name         string         `json:"name"`
		Kind         int            `json:"kind"`
		Start        string         `json:"startTimeUnixNano"`
		End          string         `json:"endTimeUnixNano"`
		Attributes   []otlpKeyValue `json:"attributes,omitempty"`
		Status       *otlpStatus    `json:"status,omitempty"`
	}
	otlpStatus struct {
		Message string `json:"message,omitempty"`
		Code    int    `json:"code"`
	}
	otlpScope struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	}
	otlpScopeSpans struct {
		Scope otlpScope  `json:"scope"`
		Spans []otlpSpan `json:"spans"`
	}
	otlpResource struct {
		Attributes []otlpKeyValue `json:"attributes"`
	}
	otlpResourceSpans struct {
		Resource   otlpResource     `json:"resource"`
		ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
	}
	otlpExport struct {
		ResourceSpans []otlpResourceSpans `json:"resourceSpans"`
	}
)

func otlpRequest(spans []sdktrace.ReadOnlySpan) otlpExport {
	var out otlpExport
	for _, s := range spans {
		// One resource and one scope in this process: group by pointer.
		if len(out.ResourceSpans) == 0 {
			out.ResourceSpans = []otlpResourceSpans{{
				Resource:   otlpResource{Attributes: otlpAttrs(s.Resource().Attributes())},
				ScopeSpans: []otlpScopeSpans{{Scope: otlpScope{Name: s.InstrumentationScope().Name, Version: s.InstrumentationScope().Version}}},
			}}
		}
		sc := s.SpanContext()
		span := otlpSpan{
			TraceID:    sc.TraceID().String(),
			SpanID:     sc.SpanID().String(),
			TraceState: sc.TraceState().String(),
			Name:       s.Name(),
			Kind:       otlpKind(s.SpanKind()),
			Start:      strconv.FormatInt(s.StartTime().UnixNano(), 10),
			End:        strconv.FormatInt(s.EndTime().UnixNano(), 10),
			Attributes: otlpAttrs(s.Attributes()),
		}
		if p := s.Parent(); p.SpanID().IsValid() {
			span.ParentSpanID = p.SpanID().String()
		}
		switch st := s.Status(); st.Code {
		case codes.Error:
			span.Status = &otlpStatus{Code: 2, Message: st.Description}
		case codes.Ok:
			span.Status = &otlpStatus{Code: 1}
		}
		ss := &out.ResourceSpans[0].ScopeSpans[0]
		ss.Spans = append(ss.Spans, span)
	}
	return out
}

func otlpKind(k trace.SpanKind) int {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	}
	return 0
}

func otlpAttrs(kvs []attribute.KeyValue) []otlpKeyValue {
	out := make([]otlpKeyValue, 0, len(kvs))
	for _, kv := range kvs {
		var v otlpValue
		switch kv.Value.Type() {
		case attribute.BOOL:
			b := kv.Value.AsBool()
			v.Bool = &b
		case attribute.INT64:
			i := strconv.FormatInt(kv.Value.AsInt64(), 10)
			v.Int = &i
		case attribute.FLOAT64:
			f := kv.Value.AsFloat64()
			v.Double = &f
		default:
			s := kv.Value.Emit()
			v.String = &s
		}
		out = append(out, otlpKeyValue{Key: string(kv.Key), Value: v})
	}
	return out
}
