// Package registry holds ddi's domain model: providers, dependencies,
// selectors, bindings and semantic-version ranges; the deterministic
// resolution rules and their explanation (Explain records Resolve's own
// decisions); and the Store interface that every registry backend
// implements (see registrytest for the conformance suite).
//
// It must not do I/O of its own, import Kubernetes packages, or know about
// transports: stores, the control plane and the sidecar build on it.
package registry
