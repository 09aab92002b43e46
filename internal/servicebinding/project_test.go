package servicebinding

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	sbv1 "ddi.dev/ddi/api/servicebinding/v1"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in       string
		wildcard bool
		want     string // String() of the parsed path; "" for an error
	}{
		{in: ".spec.template.spec.containers[*]", wildcard: true, want: "['spec']['template']['spec']['containers'][*]"},
		{in: ".spec['template'].metadata['annotations']", want: "['spec']['template']['metadata']['annotations']"},
		{in: "['a.b'].c", want: "['a.b']['c']"},
		{in: ".spec.containers[*]", wildcard: false},
		{in: ""},
		{in: "spec.template"},
		{in: ".spec..template"},
		{in: ".spec.containers[0]", wildcard: true},
		{in: `.spec.containers[?(@.name=="app")]`, wildcard: true},
		{in: "..name", wildcard: true},
		{in: ".spec['x", wildcard: true},
		{in: ".a b"},
	}
	for _, tt := range tests {
		p, err := parsePath(tt.in, tt.wildcard)
		if tt.want == "" {
			if err == nil {
				t.Errorf("parsePath(%q, %t) = %s, want an error", tt.in, tt.wildcard, p)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("parsePath(%q, %t) = %s, %v; want %s", tt.in, tt.wildcard, p, err, tt.want)
		}
	}
}

func TestMappingForNamesTheField(t *testing.T) {
	cwrm := &sbv1.ClusterWorkloadResourceMapping{ObjectMeta: metav1.ObjectMeta{Name: "cronjobs.batch"},
		Spec: sbv1.ClusterWorkloadResourceMappingSpec{Versions: []sbv1.ClusterWorkloadResourceMappingTemplate{
			{Version: "v1", Containers: []sbv1.ClusterWorkloadResourceMappingContainer{{Path: ".spec.jobTemplate.spec.template.spec.containers[*]", Env: ".env[0]"}}},
			{Version: "*", Annotations: ".spec.jobTemplate.spec.template.metadata.annotations"},
		}}}
	_, err := mappingFor(cwrm, "v1")
	if want := "ClusterWorkloadResourceMapping cronjobs.batch spec.versions[0].containers[0].env: invalid Fixed JSONPath"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("mappingFor(v1) error = %v, want one starting %q", err, want)
	}
	m, err := mappingFor(cwrm, "v2")
	if err != nil {
		t.Fatalf("mappingFor(v2) = %v, want the \"*\" entry", err)
	}
	if got, want := m.annotations.String(), "['spec']['jobTemplate']['spec']['template']['metadata']['annotations']"; got != want {
		t.Errorf("mappingFor(v2).annotations = %s, want %s", got, want)
	}
	cwrm.Spec.Versions = cwrm.Spec.Versions[:1]
	if _, err := mappingFor(cwrm, "v2"); err == nil || !strings.Contains(err.Error(), `no spec.versions entry for version "v2"`) {
		t.Errorf("mappingFor(v2) without \"*\" error = %v", err)
	}
}

// TestContainerPathFilter checks that a container path may use the full
// JSONPath syntax (only annotations, volumes, name, env and volumeMounts
// are Fixed JSONPaths), and that a broken one is refused.
func TestContainerPathFilter(t *testing.T) {
	m, err := compileMapping("test", sbv1.ClusterWorkloadResourceMappingTemplate{Containers: []sbv1.ClusterWorkloadResourceMappingContainer{
		{Path: `.spec.template.spec.containers[?(@.name=="side")]`, Name: ".name"},
	}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	u := toUnstructured(t, deployment())
	if err := project(u, m, binding{uid: "u1", name: "db", secret: "s"}); err != nil {
		t.Fatal(err)
	}
	cs := fromUnstructured(t, u).Spec.Template.Spec.Containers
	if len(cs[0].VolumeMounts) != 0 || len(cs[1].VolumeMounts) != 2 {
		t.Errorf("mounts app %v, side %v; want only side bound", cs[0].VolumeMounts, cs[1].VolumeMounts)
	}
	_, err = compileMapping("test", sbv1.ClusterWorkloadResourceMappingTemplate{Containers: []sbv1.ClusterWorkloadResourceMappingContainer{
		{Path: ".spec.template.spec.containers[*"},
	}}, "m")
	if err == nil || !strings.HasPrefix(err.Error(), "m.containers[0].path: invalid JSONPath") {
		t.Errorf("compile a broken container path: %v, want an error naming m.containers[0].path", err)
	}
}

// TestUnnamedContainersAreBound checks the Runtime Behavior rule: with a
// containers filter, a container the mapping cannot name is still bound.
func TestUnnamedContainersAreBound(t *testing.T) {
	m, err := compileMapping("test", sbv1.ClusterWorkloadResourceMappingTemplate{Containers: []sbv1.ClusterWorkloadResourceMappingContainer{
		{Path: ".spec.template.spec.containers[*]"},
	}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	u := toUnstructured(t, deployment())
	if err := project(u, m, binding{uid: "u1", name: "db", secret: "s", containers: []string{"nothing-by-this-name"}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range fromUnstructured(t, u).Spec.Template.Spec.Containers {
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "servicebinding-u1" }) {
			t.Errorf("container %s not bound; want every unnamed container bound", c.Name)
		}
	}
}

// TestRemapping projects through one mapping, then another: the first
// projection is removed through the mapping it was made with.
func TestRemapping(t *testing.T) {
	orig := toUnstructured(t, deployment())
	u := orig.DeepCopy()
	b := binding{uid: "u1", name: "db", secret: "s"}
	appOnly, err := compileMapping("app only", sbv1.ClusterWorkloadResourceMappingTemplate{Version: "*", Containers: []sbv1.ClusterWorkloadResourceMappingContainer{
		{Path: `.spec.template.spec.containers[?(@.name=="app")]`, Name: ".name"},
	}}, "app only")
	if err != nil {
		t.Fatal(err)
	}
	if err := project(u, appOnly, b); err != nil {
		t.Fatal(err)
	}
	old, ok := recordedMapping(u, "u1")
	if !ok || old.source == "" || old.template.Version != "*" {
		t.Fatalf("recordedMapping = %+v, %t; want the app-only mapping", old.template, ok)
	}
	if err := unproject(u, old, "u1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig.Object, u.Object); diff != "" {
		t.Errorf("removal through the recorded mapping left a difference (-original +removed):\n%s", diff)
	}
}

func deployment() *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "fn", Name: "web"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "migrate", Image: "m:1"}},
				Containers: []corev1.Container{
					{Name: "app", Image: "a:1", Env: []corev1.EnvVar{{Name: "SERVICE_BINDING_ROOT", Value: "/custom"}}},
					{Name: "side", Image: "s:1", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}},
				},
				Volumes: []corev1.Volume{{Name: "data"}},
			},
		}},
	}
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// TestProjectAndRemove projects a binding into a Deployment, checks every
// piece, projects again (no change) and removes it (the original again).
func TestProjectAndRemove(t *testing.T) {
	b := binding{uid: "u1", name: "db", secret: "db-creds", typ: "postgresql",
		env: []sbv1.EnvMapping{{Name: "DB_PASSWORD", Key: "password"}, {Name: "DB_TYPE", Key: "type"}}}
	orig := toUnstructured(t, deployment())
	u := orig.DeepCopy()
	if err := project(u, podSpecable(), b); err != nil {
		t.Fatal(err)
	}
	d := fromUnstructured(t, u)
	ps := d.Spec.Template.Spec
	mount := func(root string) []corev1.VolumeMount {
		return []corev1.VolumeMount{{Name: "servicebinding-u1", MountPath: root + "/db", ReadOnly: true}}
	}
	password := corev1.EnvVar{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "db-creds"}, Key: "password"}}}
	dbType := corev1.EnvVar{Name: "DB_TYPE", Value: "postgresql"}
	root := corev1.EnvVar{Name: "SERVICE_BINDING_ROOT", Value: "/bindings"}
	want := []corev1.Container{
		{Name: "migrate", Image: "m:1", Env: []corev1.EnvVar{root, password, dbType}, VolumeMounts: mount("/bindings")},
	}
	if diff := cmp.Diff(want, ps.InitContainers); diff != "" {
		t.Errorf("init containers (-want +got):\n%s", diff)
	}
	wantC := []corev1.Container{
		{Name: "app", Image: "a:1", Env: []corev1.EnvVar{{Name: "SERVICE_BINDING_ROOT", Value: "/custom"}, password, dbType}, VolumeMounts: mount("/custom")},
		{Name: "side", Image: "s:1", Env: []corev1.EnvVar{root, password, dbType}, VolumeMounts: append([]corev1.VolumeMount{{Name: "data", MountPath: "/data"}}, mount("/bindings")...)},
	}
	if diff := cmp.Diff(wantC, ps.Containers); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}
	wantVol := corev1.Volume{Name: "servicebinding-u1", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
		{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "db-creds"}}},
		{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "type",
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['type.servicebinding.ddi.dev/u1']"}}}}},
	}}}}
	if diff := cmp.Diff([]corev1.Volume{{Name: "data"}, wantVol}, ps.Volumes); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	if got := d.Spec.Template.Annotations["type.servicebinding.ddi.dev/u1"]; got != "postgresql" {
		t.Errorf("pod template annotation type = %q, want postgresql", got)
	}

	again := u.DeepCopy()
	if err := project(again, podSpecable(), b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(u.Object, again.Object); diff != "" {
		t.Errorf("projecting twice changed the workload (-once +twice):\n%s", diff)
	}

	if err := unproject(u, podSpecable(), "u1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig.Object, u.Object); diff != "" {
		t.Errorf("removal left a difference from the original (-original +removed):\n%s", diff)
	}
}

// TestProjectChanges checks that a changed binding replaces what it
// projected before, and that the containers filter leaves other
// containers alone.
func TestProjectChanges(t *testing.T) {
	orig := toUnstructured(t, deployment())
	u := orig.DeepCopy()
	first := binding{uid: "u1", name: "db", secret: "a", env: []sbv1.EnvMapping{{Name: "OLD", Key: "password"}}}
	if err := project(u, podSpecable(), first); err != nil {
		t.Fatal(err)
	}
	second := binding{uid: "u1", name: "store", secret: "b", containers: []string{"side"}}
	if err := project(u, podSpecable(), second); err != nil {
		t.Fatal(err)
	}
	ps := fromUnstructured(t, u).Spec.Template.Spec
	o := fromUnstructured(t, orig).Spec.Template.Spec
	if diff := cmp.Diff(o.InitContainers, ps.InitContainers); diff != "" {
		t.Errorf("filtered-out init container changed (-original +got):\n%s", diff)
	}
	if diff := cmp.Diff(o.Containers[0], ps.Containers[0]); diff != "" {
		t.Errorf("filtered-out container changed (-original +got):\n%s", diff)
	}
	wantSide := corev1.Container{Name: "side", Image: "s:1", Env: []corev1.EnvVar{{Name: "SERVICE_BINDING_ROOT", Value: "/bindings"}},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "servicebinding-u1", MountPath: "/bindings/store", ReadOnly: true}}}
	if diff := cmp.Diff(wantSide, ps.Containers[1]); diff != "" {
		t.Errorf("side container (-want +got):\n%s", diff)
	}
	if err := unproject(u, podSpecable(), "u1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig.Object, u.Object); diff != "" {
		t.Errorf("removal left a difference (-original +removed):\n%s", diff)
	}
}

func TestProjectRefuses(t *testing.T) {
	d := deployment()
	d.Spec.Template.Spec.Containers[1].Env = []corev1.EnvVar{{Name: "DB_PASSWORD", Value: "mine"}}
	u := toUnstructured(t, d)
	err := project(u, podSpecable(), binding{uid: "u1", name: "db", secret: "s", env: []sbv1.EnvMapping{{Name: "DB_PASSWORD", Key: "password"}}})
	if err == nil || !strings.Contains(err.Error(), "spec.env[0].name") {
		t.Errorf("project over a variable the container sets: %v, want an error naming spec.env[0].name", err)
	}
	cj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": map[string]any{"name": "nightly"},
		"spec": map[string]any{"jobTemplate": map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "job", "image": "j:1"}}}}}}}}}
	if err := project(cj, podSpecable(), binding{uid: "u1", name: "db", secret: "s"}); err == nil || !strings.Contains(err.Error(), "needs a ClusterWorkloadResourceMapping") {
		t.Errorf("project into a CronJob by default = %v, want an error asking for a mapping", err)
	}
}
