package inject

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// bindingsSizeLimit bounds the binding files. They are small (a few keys
// per dependency), and the volume lives in memory.
var bindingsSizeLimit = resource.MustParse("4Mi")

// sidecarVolumes are the three volumes the injector adds:
//
//   - ddi-bindings, an in-memory emptyDir: binding files hold secrets, which
//     must not land on the node's disk;
//   - ddi-token, the projected service-account token for the control plane
//     (audience cfg.TokenAudience, one hour, renewed by the kubelet);
//   - ddi-podinfo, the pod's name, namespace, uid, labels and annotations,
//     which the kubelet keeps current, so that a pod relabelled after it
//     started (a Fission pool pod being specialised) can re-identify.
//
// Projected volumes, rather than a plain downwardAPI volume, because Knative
// accepts them in a template.
func sidecarVolumes(cfg Config) []corev1.Volume {
	exp := int64(TokenExpirationSeconds)
	field := func(path, fieldPath string) corev1.DownwardAPIVolumeFile {
		return corev1.DownwardAPIVolumeFile{Path: path, FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: fieldPath}}
	}
	limit := bindingsSizeLimit.DeepCopy()
	return []corev1.Volume{
		{Name: VolumeBindings, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium:    corev1.StorageMediumMemory,
			SizeLimit: &limit,
		}}},
		{Name: VolumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          cfg.TokenAudience,
				ExpirationSeconds: &exp,
				Path:              "token",
			}}},
		}}},
		{Name: VolumePodInfo, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				field("name", "metadata.name"),
				field("namespace", "metadata.namespace"),
				field("uid", "metadata.uid"),
				field("labels", "metadata.labels"),
				field("annotations", "metadata.annotations"),
			}}}},
		}}},
	}
}

// addVolumes appends vols to spec, refusing a name the pod already uses.
func addVolumes(spec *corev1.PodSpec, vols []corev1.Volume) error {
	for _, v := range vols {
		for _, have := range spec.Volumes {
			if have.Name == v.Name {
				return fmt.Errorf("the pod already has a volume named %q, which the ddi sidecar needs: rename it", v.Name)
			}
		}
	}
	spec.Volumes = append(spec.Volumes, vols...)
	return nil
}
