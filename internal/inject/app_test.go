package inject

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWireContainer(t *testing.T) {
	cfg := DefaultConfig()
	env := appEnv(testSettings(ModeNative), cfg)
	c := corev1.Container{
		Name: "app",
		Env:  []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: EnvBindingRoot, Value: "/platform/bindings"}},
	}
	if err := wireContainer(&c, env, cfg); err != nil {
		t.Fatal(err)
	}
	wantEnv := []corev1.EnvVar{
		{Name: "A", Value: "1"},
		{Name: EnvBindingRoot, Value: "/platform/bindings"}, // the user's value stays
		{Name: EnvAddr, Value: "http://127.0.0.1:7471"},
	}
	if diff := cmp.Diff(wantEnv, c.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	wantMounts := []corev1.VolumeMount{{Name: VolumeBindings, MountPath: "/bindings", ReadOnly: true}}
	if diff := cmp.Diff(wantMounts, c.VolumeMounts); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	before := *c.DeepCopy()
	if err := wireContainer(&c, env, cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, c); diff != "" {
		t.Errorf("wiring twice changed the container (-once +twice):\n%s", diff)
	}
}

func TestWireContainerMountClash(t *testing.T) {
	c := corev1.Container{Name: "app", VolumeMounts: []corev1.VolumeMount{{Name: "sb", MountPath: "/bindings"}}}
	err := wireContainer(&c, nil, DefaultConfig())
	if err == nil || !strings.Contains(err.Error(), `container "app" already mounts volume "sb" at /bindings`) {
		t.Errorf("wireContainer() = %v, want an error naming the container and its mount", err)
	}
}

func TestAppContainers(t *testing.T) {
	spec := func(init, main []string) *corev1.PodSpec {
		s := &corev1.PodSpec{}
		for _, n := range init {
			s.InitContainers = append(s.InitContainers, corev1.Container{Name: n})
		}
		for _, n := range main {
			s.Containers = append(s.Containers, corev1.Container{Name: n})
		}
		return s
	}
	fission := map[string]string{fissionExecutorLabel: "poolmgr"}
	tests := []struct {
		name   string
		labels map[string]string
		spec   *corev1.PodSpec
		s      settings
		want   []string
	}{
		{name: "Knative: queue-proxy is Knative's", spec: spec(nil, []string{"user-container", "queue-proxy", SidecarName}),
			s: testSettings(ModeContainer), want: []string{"user-container"}},
		{name: "meshes' proxies", spec: spec([]string{"istio-init", "istio-proxy", SidecarName}, []string{"app", "daprd", "linkerd-proxy"}),
			s: testSettings(ModeNative), want: []string{"app"}},
		{name: "Fission: fetcher is Fission's", labels: fission, spec: spec(nil, []string{"nodejs", "fetcher"}),
			s: testSettings(ModeContainer), want: []string{"nodejs"}},
		{name: "a fetcher elsewhere is the user's", spec: spec(nil, []string{"app", "fetcher"}),
			s: testSettings(ModeContainer), want: []string{"app", "fetcher"}},
		{name: "native: init containers after the sidecar", spec: spec([]string{"setup", SidecarName, "migrate"}, []string{"app"}),
			s: testSettings(ModeNative), want: []string{"migrate", "app"}},
		{name: "plain: no init container", spec: spec([]string{"migrate"}, []string{"app", SidecarName}),
			s: testSettings(ModeContainer), want: []string{"app"}},
		{name: "annotation", spec: spec([]string{SidecarName, "migrate"}, []string{"web", "worker"}),
			s: func() settings {
				s := testSettings(ModeNative)
				s.appContainers = []string{"worker", "migrate"}
				return s
			}(),
			want: []string{"worker", "migrate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range appContainers(&metav1.ObjectMeta{Labels: tt.labels}, tt.spec, tt.s) {
				got = append(got, c.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("appContainers() (-want +got):\n%s", diff)
			}
		})
	}
}
