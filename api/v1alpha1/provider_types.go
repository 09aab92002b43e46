package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Annotations and labels the registry store keeps on Provider objects.
// They are part of the API: kubectl users see them, and a Provider applied
// by hand may carry them.
const (
	// AnnotationOwner records who registered a provider at run time, as
	// registry.Provider.Owner. An owner of the form
	// "pod:<namespace>/<name>/<uid>" also gives the Provider an
	// ownerReference to that Pod, so that Kubernetes' garbage collector
	// deletes the Provider with the Pod.
	AnnotationOwner = "ddi.dev/owner"
	// AnnotationInlineSecret names the Secret, in ddi's own namespace
	// (ddi-system), that holds the secret material a provider was
	// registered with through the registry (registry.Provider.Secret). The
	// store creates that Secret immutable, of type ddi.dev/inline-secret
	// and labelled with LabelSecretOf, and neither reads nor deletes a
	// Secret that lacks either: the annotation cannot reach another one.
	AnnotationInlineSecret = "ddi.dev/inline-secret"
	// LabelSecretOf is set on Secrets the store creates for inline secret
	// material; its value is the UID of the Provider they belong to.
	LabelSecretOf = "ddi.dev/secret-of"
	// AnnotationSecretProvider is set on Secrets the store creates for
	// inline secret material: the <namespace>/<name> of their Provider,
	// for people.
	AnnotationSecretProvider = "ddi.dev/provider"
	// AnnotationWritten is the time of the registry's last write of a
	// Provider (RFC 3339 with nanoseconds). The registry gives every write
	// a new revision, and the API server skips updates that change
	// nothing, so the store changes this on every write.
	AnnotationWritten = "ddi.dev/written"
	// AnnotationVersion, on a Knative Service's spec.template.metadata
	// (which Knative copies to each Revision), is that revision's
	// semantic version: a Provider whose serviceRef names the Service and
	// which sets no spec.version publishes the version of the revision
	// that receives the most traffic.
	AnnotationVersion = "ddi.dev/version"
)

// Condition types and reasons of Provider and DependencySet status.
const (
	// ConditionReady is the summary condition of both resources.
	ConditionReady = "Ready"

	// ReasonEndpointsReady: the provider has at least one ready endpoint.
	ReasonEndpointsReady = "EndpointsReady"
	// ReasonNoReadyEndpoints: the provider has endpoints, none ready.
	ReasonNoReadyEndpoints = "NoReadyEndpoints"
	// ReasonServiceNotFound: spec.serviceRef names a missing Service.
	ReasonServiceNotFound = "ServiceNotFound"
	// ReasonSecretNotFound: spec.secretRef names a missing Secret or key.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonLeaseExpired: a run-time registration was not renewed in time.
	ReasonLeaseExpired = "LeaseExpired"

	// ReasonResolved: every dependency of a DependencySet has a provider.
	ReasonResolved = "Resolved"
	// ReasonUnresolved: at least one dependency has no provider.
	ReasonUnresolved = "Unresolved"
)

// Provider is one implementation of a dependency: a database, a cache, a
// queue, another function. Consumers bind to it by name or by selector
// (type, version range, labels); its scope says which consumers may.
//
// Its endpoints are given directly in spec.endpoints, or derived from a
// Service or Knative Service named by spec.serviceRef; status.endpoints
// always holds the resolved list. A provider registered at run time by a
// running function carries spec.lease and is deleted when the lease passes
// without renewal, or with its Pod.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=prov,categories=ddi
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version`,description="The version the provider publishes: spec.version, else its Knative revision's"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Endpoints",type=integer,JSONPath=`.status.readyEndpoints`,description="Ready endpoints"
// +kubebuilder:printcolumn:name="Consumers",type=integer,JSONPath=`.status.consumers`,description="Dependencies of DependencySets bound to this provider"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,description="Why the provider is or is not ready"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1,description="The Ready condition's message"
// +kubebuilder:printcolumn:name="URLs",type=string,JSONPath=`.status.endpoints[?(@.ready==true)].url`,priority=1,description="Ready endpoint URLs"
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.revision`,priority=1,description="The Knative revision whose version is published"
// +kubebuilder:printcolumn:name="Traffic",type=string,JSONPath=`.status.knativeTraffic`,priority=1,description="The Knative Service's traffic split"
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS-1123 label: at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit"
type Provider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ProviderSpec `json:"spec"`
	// +optional
	Status ProviderStatus `json:"status,omitempty"`
}

// ProviderSpec is what a provider offers and to whom.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.endpoints) && has(self.serviceRef))",message="spec.endpoints and spec.serviceRef are exclusive: give the endpoints directly or derive them from a Service, not both"
// +kubebuilder:validation:XValidation:rule="has(self.endpoints) || has(self.serviceRef) || has(self.lease)",message="spec.endpoints or spec.serviceRef is required (only a run-time registration, with spec.lease, may have neither)"
type ProviderSpec struct {
	// Type is the kind of dependency: http, grpc, postgresql, mysql,
	// redis, mongodb, nats, kafka, amqp, s3, generic... A DNS-1123 label.
	// Consumers select providers by type; the Service Binding "type" file
	// carries it.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.type must be a DNS-1123 label such as postgresql or http: lower-case letters, digits and '-', starting and ending with a letter or digit"
	Type string `json:"type"`

	// Version is the provider's semantic version, MAJOR.MINOR.PATCH with
	// an optional pre-release and build ("15.2.0", "2.0.0-rc.1"); a
	// leading "v" is accepted. Empty counts as 0.0.0 when selecting.
	//
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^v?(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)(-[0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?([+][0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?$')",message="spec.version must be a semantic version MAJOR.MINOR.PATCH, for example 1.4.0 or 2.0.0-rc.1"
	Version string `json:"version,omitempty"`

	// Labels are the provider's selection labels: a dependency selector
	// such as "postgresql@^15,tier=gold" matches only providers carrying
	// every label it names. They are kept apart from metadata.labels,
	// which belong to Kubernetes tooling. Keys and values follow the
	// Kubernetes label rules.
	//
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 253 && k.matches('^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))",message="spec.labels keys must be label keys: letters, digits, '-', '_' and '.', with an optional DNS prefix and '/'"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 63 && self[k].matches('^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$'))",message="spec.labels values must be label values: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	Labels map[string]LabelValue `json:"labels,omitempty"`

	// Endpoints are where the provider answers, as absolute URLs. Give
	// them here, or derive them with serviceRef; not both.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Endpoints []Endpoint `json:"endpoints,omitempty"`

	// ServiceRef derives the endpoints from a Service or a Knative Service
	// in the Provider's namespace. The controller writes them to
	// status.endpoints.
	//
	// +optional
	ServiceRef *ServiceReference `json:"serviceRef,omitempty"`

	// Config is non-secret configuration handed to every bound consumer.
	// Each key becomes a file name in the consumer's Service Binding
	// directory, so keys cannot hold '/' or "..".
	//
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 253 && k.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$') && !k.contains('..'))",message="spec.config keys must be file names: letters, digits, '-', '_' and '.', without '/' or '..'"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 4096)",message="spec.config values must be at most 4096 bytes long"
	Config map[string]string `json:"config,omitempty"`

	// SecretRef names a Secret in the Provider's namespace whose keys are
	// handed, as secret material, only to consumers in scope. Secret
	// values never live in the Provider itself.
	//
	// +optional
	SecretRef *SecretReference `json:"secretRef,omitempty"`

	// Scope says which consumers may bind to the provider. Absent or
	// empty: every workload in the Provider's own namespace.
	//
	// +optional
	Scope *Scope `json:"scope,omitempty"`

	// Lease marks a run-time registration: the provider is deleted when
	// renewTime + ttl passes without a renewal.
	//
	// +optional
	Lease *Lease `json:"lease,omitempty"`
}

// Endpoint is one address of a provider.
type Endpoint struct {
	// URL is an absolute URL with a scheme and a host, such as
	// http://10.0.0.7:8080 or postgres://db.team-a:5432/app. It must not
	// carry credentials: put those in the Secret named by secretRef.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() != '' && url(self).getHost() != ''",message="url must be an absolute URL with a scheme and a host, such as http://10.0.0.7:8080 or postgres://db:5432/app"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="url must not carry user information (user:password@): put credentials in the Secret named by spec.secretRef"
	URL string `json:"url"`

	// Ready says whether the endpoint takes traffic; consumers bind only
	// to providers with a ready endpoint. Defaults to true.
	//
	// +optional
	// +kubebuilder:default=true
	Ready bool `json:"ready"`
}

// EndpointStatus is one resolved endpoint. The controller writes it, so the
// API server only bounds it.
type EndpointStatus struct {
	// URL is an absolute URL.
	//
	// +required
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url"`

	// Ready says whether the endpoint takes traffic.
	//
	// +required
	Ready bool `json:"ready"`
}

// ServiceReference names a core Service (apiVersion v1) or a Knative
// Service (apiVersion serving.knative.dev/v1), both of kind Service, in
// the Provider's namespace.
//
// +kubebuilder:validation:XValidation:rule="!(self.apiVersion == 'serving.knative.dev/v1' && has(self.port))",message="spec.serviceRef.port is not used with a Knative Service, whose address is its status URL: remove it"
type ServiceReference struct {
	// APIVersion is v1 for a core Service or serving.knative.dev/v1 for a
	// Knative Service.
	//
	// +optional
	// +kubebuilder:default=v1
	// +kubebuilder:validation:Enum=v1;serving.knative.dev/v1
	APIVersion string `json:"apiVersion,omitempty"`

	// Kind is Service.
	//
	// +optional
	// +kubebuilder:default=Service
	// +kubebuilder:validation:Enum=Service
	Kind string `json:"kind,omitempty"`

	// Name is the Service's name.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.serviceRef.name must be a DNS-1123 label"
	Name string `json:"name"`

	// Port is the Service port, by name or number, whose endpoints become
	// the provider's. Required when a core Service has more than one
	// port; not used with a Knative Service.
	//
	// +optional
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 65535) : (size(self) <= 15 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && self.matches('[a-z]'))",message="spec.serviceRef.port must be a port number 1-65535 or a port name (at most 15 lower-case letters, digits or '-', with a letter)"
	Port *intstr.IntOrString `json:"port,omitempty"`

	// Scheme is the scheme of the endpoint URLs built from the Service's
	// addresses, such as http or postgresql. Empty means the provider's
	// spec.type. A Knative Service's URL keeps its own scheme.
	//
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z][a-z0-9+.-]*$')",message="spec.serviceRef.scheme must be a URL scheme such as http or postgresql"
	Scheme string `json:"scheme,omitempty"`
}

// SecretReference names a Secret in the Provider's namespace and the keys
// of it that consumers receive.
type SecretReference struct {
	// Name is the Secret's name.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.secretRef.name must be a Secret name (a DNS-1123 subdomain)"
	Name string `json:"name"`

	// Keys limits what consumers receive to these keys of the Secret;
	// empty means every key. Each becomes a file name in the consumer's
	// Service Binding directory, so keys cannot hold '/' or "..".
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$') && !self.contains('..')",message="spec.secretRef.keys entries must be file names: letters, digits, '-', '_' and '.', without '/' or '..'"
	Keys []string `json:"keys,omitempty"`
}

// Scope limits which consumers may bind to a provider. Every field that is
// set must admit the consumer.
type Scope struct {
	// Namespaces whose workloads may bind; "*" admits every namespace.
	// Empty: only the Provider's own namespace.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:XValidation:rule="self == '*' || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.scope.namespaces entries must be namespace names (DNS-1123 labels) or \"*\""
	Namespaces []string `json:"namespaces,omitempty"`

	// ServiceAccounts whose pods may bind.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.scope.serviceAccounts entries must be service account names (DNS-1123 subdomains)"
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`

	// Workloads (functions, Deployments, Knative Services) by name that
	// may bind.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.scope.workloads entries must be DNS-1123 labels"
	Workloads []string `json:"workloads,omitempty"`

	// WorkloadLabels that a consumer's pod must carry to bind.
	//
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 253 && k.matches('^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))",message="spec.scope.workloadLabels keys must be label keys"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 63 && self[k].matches('^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$'))",message="spec.scope.workloadLabels values must be label values"
	WorkloadLabels map[string]LabelValue `json:"workloadLabels,omitempty"`
}

// Lease makes a provider a run-time registration: it lives while it is
// renewed. The lease expires at renewTime + ttl.
type Lease struct {
	// TTL is how long the registration lives without a renewal: a
	// duration between 1s and 24h, such as "30s" or "5m".
	//
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="spec.lease.ttl must be a duration between 1s and 24h, such as 30s or 5m"
	TTL metav1.Duration `json:"ttl"`

	// RenewTime is when the registration was last renewed; the store sets
	// it on every create, update and renewal. Absent: the creation time.
	//
	// +optional
	RenewTime *metav1.MicroTime `json:"renewTime,omitempty"`
}

// ProviderStatus is what the controller observed.
type ProviderStatus struct {
	// ObservedGeneration is the metadata.generation this status reflects.
	//
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (True when the provider has a ready endpoint; the
	// reason says why not otherwise).
	//
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Endpoints are the resolved endpoints: spec.endpoints, or those
	// derived from spec.serviceRef (at most 1024).
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	Endpoints []EndpointStatus `json:"endpoints,omitempty"`

	// ReadyEndpoints counts the ready entries of endpoints.
	//
	// +optional
	ReadyEndpoints int32 `json:"readyEndpoints"`

	// Consumers counts the dependencies of DependencySets, in any
	// namespace, whose status says they resolved to this provider.
	// Sidecars that bind it by their pod's own annotation are not
	// counted (the control plane's graph shows them).
	//
	// +optional
	Consumers int32 `json:"consumers"`

	// Version is the version the provider publishes, the one consumers
	// select and bind to: spec.version when set; else, for a Knative
	// Service, the ddi.dev/version annotation of the revision that
	// receives the largest share of its traffic (Revision).
	//
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Version string `json:"version,omitempty"`

	// Revision is the Knative revision that receives the largest share
	// of the Knative Service's traffic, whose version is published.
	//
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Revision string `json:"revision,omitempty"`

	// Traffic is how the Knative Service splits its traffic between its
	// revisions (status.traffic, entries of 0 percent left out), the
	// published revision first. Knative routes the traffic through the
	// Service's address; ddi shows the split and never splits again.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Traffic []RevisionTraffic `json:"traffic,omitempty"`

	// KnativeTraffic is Traffic in one line, as the binding's
	// knative-traffic file carries it: "80% greeter-00002 2.0.0, 20%
	// greeter-00001 1.0.0".
	//
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	KnativeTraffic string `json:"knativeTraffic,omitempty"`
}

// RevisionTraffic is the share of a Knative Service's traffic one of its
// revisions receives.
type RevisionTraffic struct {
	// RevisionName is the Knative Revision.
	//
	// +required
	// +kubebuilder:validation:MaxLength=253
	RevisionName string `json:"revisionName"`

	// Percent is the share of the Service's traffic it receives.
	//
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`

	// Version is the revision's ddi.dev/version annotation; empty when
	// it has none (or not a semantic version).
	//
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Version string `json:"version,omitempty"`
}

// ProviderList is a list of Providers.
//
// +kubebuilder:object:root=true
type ProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Provider `json:"items"`
}
