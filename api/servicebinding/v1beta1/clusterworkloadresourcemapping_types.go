package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterWorkloadResourceMapping says where the workloads of one kind keep
// their pod template's containers, volumes and annotations. Its name is the
// kind's plural resource and group, such as cronjobs.batch; a kind without
// one is treated as PodSpec-able (its pod template at .spec.template).
//
// +kubebuilder:object:root=true
// +kubebuilder:deprecatedversion:warning="servicebinding.io/v1beta1 is deprecated: use servicebinding.io/v1"
// +kubebuilder:resource:scope=Cluster,categories=servicebinding
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterWorkloadResourceMapping struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ClusterWorkloadResourceMappingSpec `json:"spec"`
}

// ClusterWorkloadResourceMappingSpec holds one mapping per version of the
// kind.
type ClusterWorkloadResourceMappingSpec struct {
	// Versions map the kind's versions; version "*" maps every version
	// that has no mapping of its own.
	//
	// +required
	// +listType=map
	// +listMapKey=version
	// +kubebuilder:validation:MinItems=1
	Versions []ClusterWorkloadResourceMappingTemplate `json:"versions"`
}

// ClusterWorkloadResourceMappingTemplate maps one version. Every path is a
// Restricted JSONPath: child operators only (.name or ['name']), and [*]
// in a container path.
type ClusterWorkloadResourceMappingTemplate struct {
	// Version is the version mapped, or "*".
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	Version string `json:"version"`

	// Annotations is the path of the pod template's annotations.
	// Default: .spec.template.metadata.annotations.
	//
	// +optional
	Annotations string `json:"annotations,omitempty"`

	// Containers are the paths of the pod template's containers. Default:
	// .spec.template.spec.initContainers[*] and
	// .spec.template.spec.containers[*], named by .name.
	//
	// +optional
	// +listType=atomic
	Containers []ClusterWorkloadResourceMappingContainer `json:"containers,omitempty"`

	// Volumes is the path of the pod template's volumes. Default:
	// .spec.template.spec.volumes.
	//
	// +optional
	Volumes string `json:"volumes,omitempty"`
}

// ClusterWorkloadResourceMappingContainer locates containers.
type ClusterWorkloadResourceMappingContainer struct {
	// Path selects the containers, such as
	// .spec.jobTemplate.spec.template.spec.containers[*].
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	Path string `json:"path"`

	// Name is the path of a container's name, relative to the container.
	// Without it the container is bound only when spec.workload.containers
	// is empty.
	//
	// +optional
	Name string `json:"name,omitempty"`

	// Env is the path of a container's environment variables, relative to
	// the container. Default: .env.
	//
	// +optional
	Env string `json:"env,omitempty"`

	// VolumeMounts is the path of a container's volume mounts, relative to
	// the container. Default: .volumeMounts.
	//
	// +optional
	VolumeMounts string `json:"volumeMounts,omitempty"`
}

// ClusterWorkloadResourceMappingList is a list of
// ClusterWorkloadResourceMappings.
//
// +kubebuilder:object:root=true
type ClusterWorkloadResourceMappingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterWorkloadResourceMapping `json:"items"`
}
