// Package servicebinding reconciles servicebinding.io/v1 ServiceBindings:
// it resolves the service to its binding Secret (a Provisioned Service's
// .status.binding.name, or a Secret named directly) and projects that
// Secret into the workloads the binding selects, through the workload
// kind's ClusterWorkloadResourceMapping or the PodSpec-able default.
//
// Projection is a pure change of an unstructured workload (project.go,
// mapping.go, jsonpath.go): the reconciler reads, changes a copy, and
// writes only when every selected workload could be projected, so bad
// input never leaves a partial projection.
//
// The package must not write Secrets, nor list or watch them: it reads the
// one Secret a binding names, and the kubelet keeps the projected files
// current when that Secret changes. docs/servicebinding.md says what is
// supported and where ddi differs from the specification.
package servicebinding
