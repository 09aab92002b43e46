package inject

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func newPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "fn", Namespace: "default", Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "fn", Image: "fn:1"}}},
	}
}

func TestPodIsIdempotent(t *testing.T) {
	pod := newPod(map[string]string{AnnotationDependencies: "db=postgresql@^15"})
	changed, err := Pod(pod, DefaultConfig())
	if err != nil || !changed {
		t.Fatalf("Pod() = %v, %v; want true, nil", changed, err)
	}
	once := pod.DeepCopy()
	changed, err = Pod(pod, DefaultConfig())
	if err != nil || changed {
		t.Fatalf("Pod(injected) = %v, %v; want false, nil", changed, err)
	}
	if diff := cmp.Diff(once, pod); diff != "" {
		t.Errorf("Pod(injected) changed the pod (-once +twice):\n%s", diff)
	}
}

func TestPodLeavesAManualSidecarAlone(t *testing.T) {
	pod := newPod(nil)
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: SidecarName, Image: "my-ddi:dev"})
	before := pod.DeepCopy()
	if changed, err := Pod(pod, DefaultConfig()); err != nil || changed {
		t.Fatalf("Pod() = %v, %v; want false, nil", changed, err)
	}
	if diff := cmp.Diff(before, pod); diff != "" {
		t.Errorf("Pod() changed a pod that has its own ddi-sidecar:\n%s", diff)
	}
}

func TestPodErrorsLeaveThePodUntouched(t *testing.T) {
	tests := []struct {
		name string
		pod  func() *corev1.Pod
		cfg  func(*Config)
		want string
	}{
		{name: "bad annotation", pod: func() *corev1.Pod { return newPod(map[string]string{AnnotationMemoryLimit: "lots"}) },
			want: "annotation ddi.dev/sidecar-memory-limit"},
		{name: "volume name taken", pod: func() *corev1.Pod {
			p := newPod(nil)
			p.Spec.Volumes = []corev1.Volume{{Name: VolumeBindings}}
			return p
		}, want: `volume named "ddi-bindings"`},
		{name: "mount path taken", pod: func() *corev1.Pod {
			p := newPod(nil)
			p.Spec.Volumes = []corev1.Volume{{Name: "sb"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "sb", MountPath: "/bindings"}}
			return p
		}, want: `container "fn" already mounts volume "sb" at /bindings`},
		{name: "host network", pod: func() *corev1.Pod {
			p := newPod(nil)
			p.Spec.HostNetwork = true
			return p
		}, want: "hostNetwork"},
		{name: "bad configuration", pod: func() *corev1.Pod { return newPod(nil) }, cfg: func(c *Config) { c.Port = 9090 },
			want: "injector configuration: port: 9090 is reserved by Knative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			pod := tt.pod()
			before := pod.DeepCopy()
			changed, err := Pod(pod, cfg)
			if changed || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Pod() = %v, %v; want false and an error containing %q", changed, err, tt.want)
			}
			if diff := cmp.Diff(before, pod); diff != "" {
				t.Errorf("Pod() changed the pod although it failed:\n%s", diff)
			}
		})
	}
}

func TestPodNativeJob(t *testing.T) {
	pod := newPod(nil)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	if changed, err := Pod(pod, DefaultConfig()); err != nil || !changed {
		t.Fatalf("Pod(job pod) = %v, %v; want true, nil: a native sidecar ends with the job", changed, err)
	}
	if len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Name != SidecarName {
		t.Errorf("init containers = %v, want the native sidecar", pod.Spec.InitContainers)
	}
}

// BenchmarkPod measures one webhook mutation of a Knative revision pod
// (configuration check included), without the admission plumbing.
func BenchmarkPod(b *testing.B) {
	pod := readPod(b, "testdata/knative-revision-pod.yaml")
	cfg := DefaultConfig()
	b.ReportAllocs()
	for b.Loop() {
		p := pod.DeepCopy()
		if _, err := Pod(p, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
