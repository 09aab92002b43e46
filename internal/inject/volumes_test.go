package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestSidecarVolumes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TokenAudience = "ddi-test"
	vols := sidecarVolumes(cfg)
	byName := map[string]corev1.Volume{}
	for _, v := range vols {
		byName[v.Name] = v
	}
	if len(byName) != 3 {
		t.Fatalf("sidecarVolumes() = %d volumes, want 3", len(vols))
	}
	if ed := byName[VolumeBindings].EmptyDir; ed == nil || ed.Medium != corev1.StorageMediumMemory {
		t.Errorf("bindings volume = %+v, want an in-memory emptyDir (binding files hold secrets)", byName[VolumeBindings])
	}
	tok := byName[VolumeToken].Projected
	if tok == nil || len(tok.Sources) != 1 || tok.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("token volume = %+v, want one projected service-account token", byName[VolumeToken])
	}
	if sat := tok.Sources[0].ServiceAccountToken; sat.Audience != "ddi-test" || *sat.ExpirationSeconds != 3600 || sat.Path != "token" {
		t.Errorf("token projection = %+v, want audience ddi-test, 3600 s, path token", sat)
	}
	info := byName[VolumePodInfo].Projected
	if info == nil || len(info.Sources) != 1 || info.Sources[0].DownwardAPI == nil {
		t.Fatalf("pod-info volume = %+v, want one downward-API projection", byName[VolumePodInfo])
	}
	got := map[string]string{}
	for _, it := range info.Sources[0].DownwardAPI.Items {
		got[it.Path] = it.FieldRef.FieldPath
	}
	for path, field := range map[string]string{"name": "metadata.name", "namespace": "metadata.namespace", "uid": "metadata.uid",
		"labels": "metadata.labels", "annotations": "metadata.annotations"} {
		if got[path] != field {
			t.Errorf("pod-info file %s = %q, want %q", path, got[path], field)
		}
	}
}

func TestAddVolumes(t *testing.T) {
	spec := &corev1.PodSpec{Volumes: []corev1.Volume{{Name: "data"}}}
	if err := addVolumes(spec, sidecarVolumes(DefaultConfig())); err != nil {
		t.Fatal(err)
	}
	if len(spec.Volumes) != 4 || spec.Volumes[0].Name != "data" {
		t.Errorf("addVolumes() = %v, want data then the three ddi volumes", spec.Volumes)
	}
	clash := &corev1.PodSpec{Volumes: []corev1.Volume{{Name: VolumeToken}}}
	err := addVolumes(clash, sidecarVolumes(DefaultConfig()))
	if err == nil || !strings.Contains(err.Error(), `already has a volume named "ddi-token"`) {
		t.Errorf("addVolumes() with a clashing name = %v, want an error naming ddi-token", err)
	}
	if len(clash.Volumes) != 1 {
		t.Errorf("addVolumes() changed the spec on error: %v", clash.Volumes)
	}
}
