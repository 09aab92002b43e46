// Package client is the typed Go client of the ddi control plane's REST API
// (docs/api.md and docs/protocol.md): providers, resolution, connected
// sidecars, and the snapshot stream with its acknowledgements. The sidecar
// uses it for run-time registrations and its stream; the CLI uses it for
// everything else.
//
// A zero Client except for BaseURL works: it uses a shared HTTP client
// without an overall timeout (streams are long-lived), bounds each unary call
// with DefaultTimeout when the caller's context has no deadline, and, when
// TokenFile is set, reads the bearer token from that file on every request
// so rotated Kubernetes tokens are picked up.
//
// Every non-2xx answer is returned as a *httpapi.Problem, so callers use
// errors.As (or StatusCode) to tell a missing provider from a conflict.
//
// It must not know about the sidecar, the CLI or any store: it speaks the
// wire protocol and nothing else.
package client
