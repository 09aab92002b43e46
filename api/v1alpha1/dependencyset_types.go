package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DependencySet declares the dependencies of workloads: it selects pods in
// its namespace by label and lists the named slots ("db", "payments") they
// need, each filled by a provider named explicitly or chosen by selector.
//
// It is called a DependencySet, not a Binding, because in ddi a binding is
// the resolved answer for one slot of one consumer (which provider, which
// endpoints); a DependencySet is the question.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=depset,categories=ddi
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Resolved",type=integer,JSONPath=`.status.resolvedCount`,description="Dependencies that resolved"
// +kubebuilder:printcolumn:name="Dependencies",type=integer,JSONPath=`.status.dependencyCount`,description="Dependencies in spec"
// +kubebuilder:printcolumn:name="Providers",type=string,JSONPath=`.status.providers`,description="alias=namespace/name of each dependency's provider, - when unresolved"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,description="Why the set is or is not ready"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1,description="The Ready condition's message: which rule rejected which candidates"
type DependencySet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec DependencySetSpec `json:"spec"`
	// +optional
	Status DependencySetStatus `json:"status,omitempty"`
}

// DependencySetSpec selects workloads and lists their dependencies.
type DependencySetSpec struct {
	// Selector selects the pods, in the DependencySet's namespace, that
	// declare these dependencies. An empty selector selects every pod of
	// the namespace. The API server checks the operators; the controller
	// checks matchLabels keys and values (the CEL cost budget cannot cover
	// an unbounded map) and reports a bad one in the Ready condition.
	//
	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="spec.selector.matchExpressions operators must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="spec.selector.matchExpressions: In and NotIn need values; Exists and DoesNotExist take none"
	Selector metav1.LabelSelector `json:"selector"`

	// Dependencies are the slots the selected workloads need. Aliases are
	// unique.
	//
	// +required
	// +listType=map
	// +listMapKey=alias
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Dependencies []Dependency `json:"dependencies"`
}

// Dependency is one named slot, filled by the provider named in provider,
// by the best match of selector, or split among weighted targets; exactly
// one of the three is set.
//
// +kubebuilder:validation:XValidation:rule="(has(self.provider) ? 1 : 0) + (has(self.selector) ? 1 : 0) + (has(self.targets) ? 1 : 0) == 1",message="set exactly one of provider (a provider by name), selector (a type, version range and labels) and targets (a weighted traffic split)"
type Dependency struct {
	// Alias names the slot, as the workload sees it: its Service Binding
	// directory, its binding name in the sidecar API. A DNS-1123 label.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="alias must be a DNS-1123 label such as db or payments"
	Alias string `json:"alias"`

	// Provider names the provider that fills the slot.
	//
	// +optional
	Provider *ProviderReference `json:"provider,omitempty"`

	// Selector chooses the provider: the highest version of the given type
	// in the range that carries the labels and whose scope admits the
	// workload.
	//
	// +optional
	Selector *ProviderSelector `json:"selector,omitempty"`

	// Targets split the slot's invocations among several providers by
	// weight, as for a canary: each target names a provider or a
	// selector, and a weight in percent; the weights add up to 100. The
	// target with the highest weight (the first among equals) is the
	// primary: the binding files and typed clients get its provider. A
	// target that does not resolve receives nothing; its weight goes to
	// the others in proportion to theirs (docs/resolution.md).
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:XValidation:rule="self.map(t, t.weight).sum() == 100",message="targets: the weights must add up to 100"
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, (has(a.provider) && has(b.provider) && a.provider == b.provider) || (has(a.selector) && has(b.selector) && a.selector == b.selector)))",message="targets: each provider or selector may appear only once; give a repeated one the sum of the weights"
	Targets []DependencyTarget `json:"targets,omitempty"`
}

// DependencyTarget is one weighted target of a traffic split: a provider
// named in provider or the best match of selector (exactly one of the
// two), and its weight.
//
// +kubebuilder:validation:XValidation:rule="has(self.provider) != has(self.selector)",message="targets[]: set exactly one of provider (a provider by name) and selector (a type, version range and labels)"
type DependencyTarget struct {
	// Weight is the percentage of invocations for this target, from 0
	// to 100.
	//
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`

	// Provider names the provider of this target.
	//
	// +optional
	Provider *ProviderReference `json:"provider,omitempty"`

	// Selector chooses the provider of this target.
	//
	// +optional
	Selector *ProviderSelector `json:"selector,omitempty"`
}

// ProviderReference names one Provider.
type ProviderReference struct {
	// Name is the Provider's name.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="provider.name must be a DNS-1123 label"
	Name string `json:"name"`

	// Namespace is the Provider's namespace; empty means the
	// DependencySet's. The Provider's scope must admit the workload.
	//
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="provider.namespace must be a namespace name (a DNS-1123 label)"
	Namespace string `json:"namespace,omitempty"`
}

// ProviderSelector chooses a provider by type, version range and labels:
// the structured form of the selector "TYPE@RANGE,KEY=VALUE,...".
type ProviderSelector struct {
	// Type is the provider type, such as postgresql or http.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="selector.type must be a DNS-1123 label such as postgresql or http"
	Type string `json:"type"`

	// Namespace is where to look: empty for the DependencySet's own
	// namespace only, a namespace name, or "*" for every namespace whose
	// providers export themselves (spec.scope.namespaces) to the workload.
	//
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == '*' || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="selector.namespace must be a namespace name (a DNS-1123 label) or *"
	Namespace string `json:"namespace,omitempty"`

	// Version is a semantic-version range: "*" (any release, the
	// default), "^1.2", "~1.4.0", ">=1.2 <2", "1.x", alternatives joined
	// by "||".
	//
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^[ ]*$') || self.matches('^[ ]*(>=|<=|>|<|=|[~^])?v?(0|[1-9][0-9]*|[xX*])([.](0|[1-9][0-9]*|[xX*])){0,2}(-[0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?([+][0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?([ ]+(>=|<=|>|<|=|[~^])?v?(0|[1-9][0-9]*|[xX*])([.](0|[1-9][0-9]*|[xX*])){0,2}(-[0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?([+][0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?)*[ ]*([|][|][ ]*(>=|<=|>|<|=|[~^])?v?(0|[1-9][0-9]*|[xX*])([.](0|[1-9][0-9]*|[xX*])){0,2}(-[0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?([+][0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?([ ]+(>=|<=|>|<|=|[~^])?v?(0|[1-9][0-9]*|[xX*])([.](0|[1-9][0-9]*|[xX*])){0,2}(-[0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?([+][0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?)*[ ]*)*$')",message="selector.version must be a version range such as *, ^1.2, ~1.4.0, >=1.2 <2 or 1.x, alternatives joined by ||"
	Version string `json:"version,omitempty"`

	// Labels the provider must carry in its spec.labels.
	//
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 253 && k.matches('^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))",message="selector.labels keys must be label keys"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 63 && self[k].matches('^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$'))",message="selector.labels values must be label values"
	Labels map[string]LabelValue `json:"labels,omitempty"`
}

// LabelValue is a label value: at most 63 letters, digits, '-', '_' or
// '.', starting and ending with a letter or digit. Its bound keeps the
// cost of the CEL rules over maps of labels within the API server's
// budget.
//
// +kubebuilder:validation:MaxLength=63
type LabelValue string

// DependencySetStatus is what the controller observed.
type DependencySetStatus struct {
	// ObservedGeneration is the metadata.generation this status reflects.
	//
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (True when every dependency resolved).
	//
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Dependencies reports, per alias, the provider it resolved to or why
	// it did not resolve. Resolution is computed for a workload of this
	// namespace; a provider's scope may still refuse a pod whose service
	// account or labels it does not admit, which that pod's sidecar
	// reports.
	//
	// +optional
	// +listType=map
	// +listMapKey=alias
	// +kubebuilder:validation:MaxItems=64
	Dependencies []DependencyStatus `json:"dependencies,omitempty"`

	// DependencyCount is the number of dependencies in spec.
	//
	// +optional
	DependencyCount int32 `json:"dependencyCount"`

	// ResolvedCount is the number of dependencies that resolved.
	//
	// +optional
	ResolvedCount int32 `json:"resolvedCount"`

	// Providers sums up dependencies for kubectl get: "alias=namespace/name"
	// per dependency in spec order, "alias=-" when it did not resolve,
	// joined by ",".
	//
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	Providers string `json:"providers,omitempty"`
}

// DependencyStatus is the resolution of one dependency.
type DependencyStatus struct {
	// Alias is the dependency's alias.
	//
	// +required
	// +kubebuilder:validation:MaxLength=63
	Alias string `json:"alias"`

	// Provider is "namespace/name" of the provider the dependency resolved
	// to; empty when it did not resolve.
	//
	// +optional
	// +kubebuilder:validation:MaxLength=127
	Provider string `json:"provider,omitempty"`

	// Version is the resolved provider's version.
	//
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Version string `json:"version,omitempty"`

	// Reason is a CamelCase word for why the dependency did not resolve
	// (NoMatch, OutOfScope, NotReady, InvalidSelector), empty when it did.
	//
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`

	// Message is a sentence a person can act on: for an unresolved
	// dependency, the explanation (which rule rejected which candidate
	// providers).
	//
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// DependencySetList is a list of DependencySets.
//
// +kubebuilder:object:root=true
type DependencySetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DependencySet `json:"items"`
}
