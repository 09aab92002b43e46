// Package controlplane is ddi's control plane: it owns a registry.Store,
// keeps an in-memory index of providers fed by the store's watch, resolves
// each connected consumer's dependencies, and streams versioned snapshots to
// sidecars over the protocol in docs/protocol.md. It also serves the
// provider REST API the CLI and sidecars use for run-time registrations,
// explanations of resolutions (registry.Explain), and the dependency graph:
// as JSON, as server-sent events, and as a page whose assets are embedded
// (dashboard/), for admin callers and users whose permissions cover every
// namespace. Users (Caller.User) are authorised route by route through
// Caller.Allowed, by the Kubernetes permissions each route's answer needs.
//
// The same Server runs in `ddi dev` (embedded bbolt store, trusting
// loopback callers) and inside `ddi controller` on Kubernetes (custom
// resource store, identities from service-account tokens): everything
// platform-specific comes in through Store, Authenticator and SecretSource.
// Serve is the one serve-and-drain of both; StartLocal assembles the
// one-machine control plane (bbolt store, loopback listener). It must not
// import Kubernetes packages.
package controlplane
