package sidecar

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"ddi.dev/ddi/internal/httpapi"
)

// gRPC through the sidecar. A function's gRPC client dials its sidecar
// over h2c (HTTP/2 without TLS, on loopback) and names the dependency in
// the metadata key ddi-dependency; the sidecar relays each call, unary or
// streaming, to the next endpoint of that dependency's provider over h2c.
// The :authority stays the sidecar's loopback address (the loopback guard
// requires it), so it cannot carry the name.

// grpcDependencyKey is the metadata key (an HTTP/2 header) naming the
// dependency of a gRPC call.
const grpcDependencyKey = "Ddi-Dependency"

// isGRPC reports whether r is a gRPC call.
func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// grpcProxy relays gRPC calls over h2c.
type grpcProxy struct {
	rp        *httputil.ReverseProxy
	transport *http.Transport
}

func newGRPCProxy(p *proxy) *grpcProxy {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	g := &grpcProxy{transport: &http.Transport{
		Proxy:           nil,
		DialContext:     (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		Protocols:       &protos,
		IdleConnTimeout: 90 * time.Second,
	}}
	g.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.Host = ""
			pr.Out.Header.Del(grpcDependencyKey)
			pr.SetXForwarded()
		},
		Transport:     grpcRoundTripper{p: p, t: g.transport},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			inv := invocationOf(r)
			if inv.Err() != nil {
				inv.result = resultCanceled
			} else {
				inv.result = resultError
			}
			writeGRPCStatus(w, 14, fmt.Sprintf("dependency %q could not be reached: %v", inv.dependency, err)) // UNAVAILABLE
		},
		ErrorLog: p.rp.ErrorLog,
	}
	return g
}

// grpcRoundTripper sends a call to the next available endpoint. A call is
// never repeated: a stream may have been partly consumed.
type grpcRoundTripper struct {
	p *proxy
	t *http.Transport
}

func (g grpcRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	inv := invocationOf(req)
	now := time.Now()
	ep := inv.pool.pick(now.UnixNano(), nil)
	if ep == nil {
		return nil, errNoEndpoint
	}
	u := req.URL
	u.Scheme, u.Host = "http", ep.host
	resp, err := g.t.RoundTrip(req)
	if err != nil {
		if req.Context().Err() == nil {
			g.p.fail(ep, now)
		}
		return nil, fmt.Errorf("%s: %w", ep.host, err)
	}
	inv.status = resp.StatusCode
	ep.succeeded()
	return resp, nil
}

// handleGRPC relays one gRPC call to the dependency its metadata names.
func (s *Sidecar) handleGRPC(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(grpcDependencyKey)
	if name == "" {
		writeGRPCStatus(w, 3, "no ddi-dependency metadata: a gRPC call through the sidecar names its dependency in the metadata key ddi-dependency") // INVALID_ARGUMENT
		return
	}
	pl, _, prob := s.prepareInvoke(name, "", "")
	if prob != nil {
		writeGRPCStatus(w, grpcCode(prob), prob.Detail)
		return
	}
	pl = pl.target()
	inv := &invocation{Context: r.Context(), dependency: name, pool: pl}
	defer func() {
		if inv.result == "" {
			inv.result = resultOK
		}
		pl.counters[resultIndex(inv.result)].Inc()
	}()
	s.grpc.rp.ServeHTTP(w, r.WithContext(inv))
}

// grpcCode maps a refusal to its gRPC status code.
func grpcCode(p *httpapi.Problem) int {
	switch p.Status {
	case http.StatusNotFound:
		return 5 // NOT_FOUND
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	}
	return 9 // FAILED_PRECONDITION: not invokable, invalid name
}

// writeGRPCStatus answers a call with a status and no message (a
// trailers-only response).
func writeGRPCStatus(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", grpcMessageEscape(msg))
	w.WriteHeader(http.StatusOK)
}

// grpcMessageEscape percent-encodes a grpc-message value (the gRPC
// over HTTP/2 specification).
func grpcMessageEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
