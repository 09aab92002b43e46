// Package v1 holds the Service Binding for Kubernetes resources, group
// servicebinding.io, version v1 (https://servicebinding.io/spec/core/1.0.0/):
//
//   - ServiceBinding: binds a service (a Provisioned Service, or a Secret
//     directly) to workloads chosen by name or label selector, by
//     projecting the service's binding Secret into their pods.
//   - ClusterWorkloadResourceMapping: says where a workload kind keeps its
//     pod template's containers, volumes and annotations, for kinds that
//     are not PodSpec-able (a CronJob, a Knative Service, a custom
//     resource).
//
// The schema follows the specification's; the kubebuilder markers are the
// API server's validation, and hack/gen.sh turns them into the CRDs in
// deploy/crd and the deep-copy functions in zz_generated.deepcopy.go.
// docs/servicebinding.md says what ddi supports and where it differs from
// the specification.
//
// The package holds types only: no client, no I/O, and no dependency on
// ddi's internal packages. The reconciler lives in internal/servicebinding.
//
// +kubebuilder:object:generate=true
// +groupName=servicebinding.io
package v1
