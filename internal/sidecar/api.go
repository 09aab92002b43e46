package sidecar

import (
	"net/http"
	"strings"

	"ddi.dev/ddi/internal/httpapi"
)

// routes builds the HTTP API of docs/api.md. Every route is instrumented
// under its pattern; a wrong method or an unknown path answers a problem
// document, like every other error.
//
// /v1/invoke/{name}/{path...} is dispatched on its prefix before the mux:
// a multi-segment wildcard costs the mux two tree walks and a few
// allocations per request (it retries with a trailing slash), which is
// measurable on the proxy's hot path. The path after the name reaches the
// provider as sent, escaping kept; dot segments are refused (invoke.go).
//
// Every route is behind httpapi.LocalOnly: a loopback Host, no cross-site
// Origin, and JSON bodies on the API's own routes (the invoke proxy
// forwards any body).
func (s *Sidecar) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.metrics.instrument(pattern, h))
	}
	handle("GET /v1/bindings", s.handleList)
	s.getRoute = s.metrics.instrument("GET /v1/bindings/{name}", http.HandlerFunc(s.handleGet))
	mux.Handle("GET /v1/bindings/{name}", s.getRoute)
	handle("GET /v1/watch", s.handleWatch)
	handle("PUT /v1/providers/{name}", s.handleRegister)
	handle("DELETE /v1/providers/{name}", s.handleDeregister)
	handle("GET /healthz", s.handleHealthz)
	handle("GET /readyz", s.handleReadyz)
	mux.Handle("GET /metrics", s.metrics.instrument("GET /metrics", s.metrics.handler()))

	for path, allow := range map[string]string{
		"/v1/bindings":         "GET, HEAD",
		"/v1/bindings/{name}":  "GET, HEAD",
		"/v1/watch":            "GET, HEAD",
		"/v1/providers/{name}": "PUT, DELETE",
		"/healthz":             "GET, HEAD",
		"/readyz":              "GET, HEAD",
		"/metrics":             "GET, HEAD",
	} {
		handle(path, methodNotAllowed(allow))
	}
	handle("/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusNotFound, "not-found",
			"no route for "+r.URL.Path+": see docs/api.md (bindings, watch, providers, invoke, healthz, readyz, metrics)"))
	})
	invoke := s.metrics.instrument("/v1/invoke/{name}/{path...}", http.HandlerFunc(s.handleInvoke))
	s.invokeRoute = invoke
	grpcRoute := s.metrics.instrument("grpc", http.HandlerFunc(s.handleGRPC))
	isInvoke := func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, invokePrefix) || isGRPC(r) }
	return httpapi.LocalOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isGRPC(r) {
			grpcRoute.ServeHTTP(w, r)
			return
		}
		if isInvoke(r) {
			invoke.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}), httpapi.LocalOptions{Listen: s.cfg.Listen, RawBody: isInvoke})
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed",
			r.Method+" is not allowed on "+r.URL.Path+": use "+strings.ReplaceAll(allow, ", HEAD", "")))
	}
}
