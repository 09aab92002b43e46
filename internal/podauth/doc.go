// Package podauth authenticates in-cluster sidecars as the pods they run
// in. It implements controlplane.Authenticator: a sidecar presents its
// pod's projected service-account token (audience "ddi"); podauth verifies
// it with a TokenReview, takes the pod's name and UID from the token's
// claims, reads the pod, and derives the consumer identity (namespace,
// workload name, service account, labels) and the declared dependencies
// from the pod itself. What the sidecar claims in its hello is ignored.
//
// A sidecar may write only run-time registrations owned by its own pod, in
// its pod's namespace. Nothing here ever hands one pod's identity, bindings
// or secrets to another. The package reads the API server; it writes
// nothing but TokenReviews.
package podauth
