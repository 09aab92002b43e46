// Package sidecar is the per-function injector (`ddi sidecar`, and the one
// `ddi run` starts): it keeps the consumer's bindings in memory from the
// control plane's snapshot stream, serves them on a loopback HTTP API
// (docs/api.md), projects them as Service Binding files, registers run-time
// providers under a renewed lease, and proxies invocations to bound HTTP
// providers with load balancing, retries and outlier ejection.
//
// One responsibility per file: config.go (Config and its validation),
// sidecar.go (New, Run, Serve and the shutdown order), cache.go (the
// snapshot cache: pre-encoded bindings, monotonic revisions, change
// broadcast), stream.go (the control-plane stream client), api.go (the
// route table), bindings.go (bindings and long poll), watch.go
// (server-sent events), registrations.go (run-time providers and their
// leases), invoke.go (the reverse proxy, retries, timeouts), balancer.go
// (round robin and outlier ejection), files.go (Service Binding files),
// health.go (healthz, readyz), metrics.go (Prometheus, own registry).
//
// It must never watch the Kubernetes API, never block a request on the
// control plane except when forwarding a registration, and never let secret
// values reach logs, metrics or problem details.
package sidecar
