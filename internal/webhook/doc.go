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
// Admission has no side effects beyond one Event: when the handler skips a
// pod that asked for injection, it says why in a warning of the response
// and, for requests that are not dry runs, records an Event on the pod's
// controller; the webhook configuration therefore declares sideEffects
// NoneOnDryRun. Anyone who reaches the port may send a review, so the
// handler must not write anything from a request alone: it records the
// Event only after reading the controller from the API server and finding
// the UID the pod names (see Handler). The mutation rules themselves live
// in package inject, which this package must not duplicate.
package webhook
