// Package inject is ddi's Pod mutation: it decides whether a pod gets the ddi
// sidecar (Decide), adds the sidecar, its volumes and the function's
// environment to a pod (Pod), and applies the same mutation offline to
// manifests of Pods and the workloads that template them (Manifest).
//
// The admission webhook mutates a typed copy of the incoming Pod with Pod and
// lets controller-runtime diff it against the raw request; `ddi inject -f`
// calls Manifest. Both therefore produce the same sidecar.
//
// The package is pure: it must not do I/O, call the Kubernetes API, log, read
// the clock or keep state between calls. Everything it needs arrives in its
// arguments, and every problem comes back as an error that names the
// annotation or field to fix. See docs/injection.md for what the mutation adds
// and why.
package inject
