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
// or secrets to another.
//
// People (the ddi CLI with a kubeconfig) present the bearer token their
// kubeconfig presents to the API server. A token whose claims name the
// sidecar audience is always a pod's; any other is verified by a
// TokenReview with the API server's own audience, and the caller gets what
// SubjectAccessReviews of the person's RBAC allow, route by route
// (controlplane.Caller.Allowed). A person never writes, streams or
// acknowledges, and is never an admin.
//
// The package reads the API server; it writes nothing but TokenReviews and
// SubjectAccessReviews.
package podauth
