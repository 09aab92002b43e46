// Package v1beta1 holds the Service Binding resources at version
// servicebinding.io/v1beta1, which the specification's pre-1.0 drafts
// defined and its conformance suite still writes. ddi serves it, marked
// deprecated, with exactly the schema of v1 (a test compares the two), so
// the API server converts between them without a webhook; ddi itself reads
// and writes only v1 (package ddi.dev/ddi/api/servicebinding/v1).
//
// The types are a copy of v1's; change both together and run hack/gen.sh.
//
// +kubebuilder:object:generate=true
// +groupName=servicebinding.io
package v1beta1
