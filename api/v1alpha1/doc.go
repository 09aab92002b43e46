// Package v1alpha1 holds ddi's Kubernetes custom resources, group ddi.dev,
// version v1alpha1:
//
//   - Provider: one implementation of a dependency (a database, a cache,
//     another function), with endpoints given directly or derived from a
//     Service or Knative Service, non-secret config, a reference to a
//     Secret, and a scope saying which consumers may bind to it.
//   - DependencySet: selects pods in its namespace by label and lists the
//     dependencies they declare, each by provider name or by selector.
//
// The kubebuilder markers on these types are the API server's validation:
// hack/gen.sh turns them into the CRDs in deploy/crd and the deep-copy
// functions in zz_generated.deepcopy.go. docs/crds.md documents every rule.
//
// The package holds types only: no client, no I/O, and no dependency on
// ddi's internal packages. Conversion to the registry's domain model lives
// in internal/registry/kube.
//
// +kubebuilder:object:generate=true
// +groupName=ddi.dev
package v1alpha1
