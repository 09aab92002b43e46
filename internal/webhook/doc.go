// Package webhook is the admission plumbing around package inject: an HTTP
// handler for the Pod mutating webhook, the detection of native sidecar
// support, the webhook's self-managed serving certificate, and a reconciler
// that keeps the caBundle of the MutatingWebhookConfiguration current.
//
// The handler decodes the AdmissionReview, reads the namespace's labels from
// a cache, asks inject.Decide, mutates a typed copy with inject.Pod and lets
// controller-runtime diff it against the raw request
// (admission.PatchResponseFromRaw). It never builds a patch by hand. The
// CA that injected sidecars trust for the control plane (Certs.CABundle,
// which also serves the control plane's stream) is read on every admission,
// so a rotated CA reaches the next pod.
//
// Admission has no side effects: the handler writes nothing to the API
// server while it decides. When it skips a pod that asked for injection, it
// records an Event after the response is written, and only for requests
// that are not dry runs; the webhook configuration therefore declares
// sideEffects NoneOnDryRun. The mutation rules themselves live in package
// inject, which this package must not duplicate.
package webhook
