package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceBinding projects a service's binding Secret into workloads: a
// volume at $SERVICE_BINDING_ROOT/<name> in every matching container, and
// environment variables for the entries spec.env names.
//
// +kubebuilder:object:root=true
// +kubebuilder:deprecatedversion:warning="servicebinding.io/v1beta1 is deprecated: use servicebinding.io/v1"
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=servicebinding
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Binding",type=string,JSONPath=`.status.binding.name`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ServiceBindingSpec `json:"spec"`
	// +optional
	Status ServiceBindingStatus `json:"status,omitempty"`
}

// ServiceBindingSpec is what to bind to what.
type ServiceBindingSpec struct {
	// Name is the binding's name: the directory under
	// $SERVICE_BINDING_ROOT. Default: the ServiceBinding's name.
	//
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9.-]+$') && self != '.' && self != '..'",message="spec.name must match [a-z0-9\\-\\.]{1,253} and not be . or .., such as db"
	Name string `json:"name,omitempty"`

	// Type overrides the binding's type entry.
	//
	// +optional
	Type string `json:"type,omitempty"`

	// Provider overrides the binding's provider entry.
	//
	// +optional
	Provider string `json:"provider,omitempty"`

	// Workload selects the workloads to bind: one by name, or every
	// workload of the kind whose labels match the selector.
	//
	// +required
	Workload ServiceBindingWorkloadReference `json:"workload"`

	// Service is the service to bind: a Provisioned Service (a resource
	// whose .status.binding.name names a Secret), or a Secret (apiVersion
	// v1, kind Secret).
	//
	// +required
	Service ServiceBindingServiceReference `json:"service"`

	// Env maps binding entries to environment variables.
	//
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []EnvMapping `json:"env,omitempty"`
}

// ServiceBindingWorkloadReference names the workloads to bind: exactly one
// of name and selector is set.
//
// +kubebuilder:validation:XValidation:rule="has(self.name) != has(self.selector)",message="spec.workload: set exactly one of name (one workload) and selector (every workload whose labels match)"
type ServiceBindingWorkloadReference struct {
	// APIVersion is the workloads' API version, such as apps/v1.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`

	// Kind is the workloads' kind, such as Deployment.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`

	// Name is the name of one workload in the ServiceBinding's namespace.
	//
	// +optional
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name,omitempty"`

	// Selector selects workloads of the kind in the ServiceBinding's
	// namespace by label.
	//
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// Containers limits the projection to the containers and init
	// containers of these names. Empty: every container.
	//
	// +optional
	// +listType=set
	Containers []string `json:"containers,omitempty"`
}

// ServiceBindingServiceReference names the service to bind, in the
// ServiceBinding's namespace.
type ServiceBindingServiceReference struct {
	// APIVersion is the service's API version.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`

	// Kind is the service's kind.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`

	// Name is the service's name.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// EnvMapping exposes one binding entry as an environment variable.
type EnvMapping struct {
	// Name is the environment variable's name.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Key is the binding entry's key, such as password.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// ServiceBindingStatus is the observed state of a ServiceBinding.
type ServiceBindingStatus struct {
	// ObservedGeneration is the generation the status describes.
	//
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold Ready, the summary, and ServiceAvailable.
	//
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Binding is the Secret projected into the workloads.
	//
	// +optional
	Binding *ServiceBindingSecretReference `json:"binding,omitempty"`
}

// ServiceBindingSecretReference names a Secret in the ServiceBinding's
// namespace.
type ServiceBindingSecretReference struct {
	// Name is the Secret's name.
	//
	// +required
	Name string `json:"name"`
}

// ServiceBindingList is a list of ServiceBindings.
//
// +kubebuilder:object:root=true
type ServiceBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceBinding `json:"items"`
}

// The condition types and reasons of ServiceBinding status.
const (
	// ConditionReady is the summary condition.
	ConditionReady = "Ready"
	// ConditionServiceAvailable says whether the service exists and
	// exposes a binding Secret.
	ConditionServiceAvailable = "ServiceAvailable"

	// ReasonServiceAvailable: the service's binding Secret exists.
	ReasonServiceAvailable = "ServiceAvailable"

	// ReasonProjected: the binding is projected into every matching
	// workload.
	ReasonProjected = "Projected"
	// ReasonServiceNotFound: spec.service names a resource that does not
	// exist, or a kind the API server does not serve.
	ReasonServiceNotFound = "ServiceNotFound"
	// ReasonServiceNotProvisioned: spec.service names a resource without
	// .status.binding.name.
	ReasonServiceNotProvisioned = "ServiceNotProvisioned"
	// ReasonSecretNotFound: the binding Secret does not exist (yet).
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonWorkloadNotFound: spec.workload.name names a missing workload,
	// or a kind the API server does not serve.
	ReasonWorkloadNotFound = "WorkloadNotFound"
	// ReasonInvalidMapping: the workload's ClusterWorkloadResourceMapping
	// has an invalid JSONPath, or the workload kind has no mapping and is
	// not PodSpec-able.
	ReasonInvalidMapping = "InvalidMapping"
	// ReasonInvalidSpec: a field of the ServiceBinding the API server
	// cannot check is wrong (a label selector's values, an apiVersion).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonProjectionFailed: writing a workload failed; it is retried.
	ReasonProjectionFailed = "ProjectionFailed"
)
