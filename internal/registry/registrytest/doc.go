// Package registrytest is the conformance suite every registry.Store
// implementation passes: Run exercises reads, writes, optimistic
// concurrency, revisions, watches, leases, deep copies, Close and, when the
// implementation can reopen a store, persistence.
//
// The suite treats a store as a black box. It assumes only what the
// registry.Store contract says, so that a store backed by a real Kubernetes
// API server passes it as well as the embedded one: revisions must grow but
// need not be consecutive, and lease expiry may take a few seconds (see
// WithLeaseGrace).
//
// It must not import any store implementation.
package registrytest
