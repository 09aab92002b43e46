// Package sidecar is the per-function injector (`ddi sidecar`, and the one
// `ddi run` starts): it keeps the consumer's bindings in memory from the
// control plane's snapshot stream, serves them on a loopback HTTP API
// (docs/api.md), projects them as Service Binding files, registers run-time
// providers under a renewed lease, and proxies invocations to bound HTTP
// providers with load balancing, retries and outlier ejection.
//
// One responsibility per file: config.go (Config and its validation),
// cache.go (the snapshot cache and change broadcast), stream.go (the
// control-plane stream client), api.go and the handlers (the HTTP API),
// watch.go (server-sent events), registrations.go (run-time providers and
// their leases), invoke.go and balancer.go (the proxy), files.go (binding
// projection), metrics.go (Prometheus).
//
// It must never watch the Kubernetes API, never block a request on the
// control plane except when forwarding a registration, and never let secret
// values reach logs, metrics or problem details.
package sidecar
