// Package controller assembles `ddi controller`: one controller-runtime
// manager that hosts the registry store on custom resources, the control
// plane's snapshot stream for in-cluster sidecars (on its own port, over
// TLS with the webhook's certificate, whose CA the webhook injects into the
// sidecars), the Pod injection webhook with its self-managed certificate and
// caBundle, and the reconcilers that keep Provider and DependencySet status
// true.
//
// Run is the whole command; Options.AddFlags binds its flags. The package
// wires other packages together and holds the reconcilers; the injection
// rules (inject), admission plumbing (webhook), sidecar authentication
// (podauth) and resolution (controlplane, registry) live elsewhere and must
// not be duplicated here.
package controller
