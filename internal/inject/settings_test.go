package inject

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodSettingsDefaults(t *testing.T) {
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
	s, err := podSettings(&metav1.ObjectMeta{}, spec, DefaultConfig(), targetPod)
	if err != nil {
		t.Fatal(err)
	}
	want := settings{
		image: DefaultImage, port: DefaultPort, metricsPort: DefaultMetricsPort, mode: ModeOrdered, logLevel: DefaultLogLevel,
		resources: DefaultConfig().Resources,
	}
	if diff := cmp.Diff(want, s, cmp.AllowUnexported(settings{}), quantityEqual); diff != "" {
		t.Errorf("podSettings() (-want +got):\n%s", diff)
	}
}

var quantityEqual = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })

func TestPodSettingsOverrides(t *testing.T) {
	meta := &metav1.ObjectMeta{Annotations: map[string]string{
		AnnotationSidecarMode:   ModeContainer,
		AnnotationSidecarImage:  "mirror.example/ddi:v0.1.0",
		AnnotationSidecarPort:   "7600",
		AnnotationMetricsPort:   "0",
		AnnotationCPURequest:    "50m",
		AnnotationCPULimit:      "0.5",
		AnnotationMemoryRequest: "32Mi",
		AnnotationMemoryLimit:   "256Mi",
		AnnotationLogLevel:      "debug",
		AnnotationDependencies:  " db=postgresql@^15 ; cache=redis@^7 ",
		AnnotationAppContainers: "web, worker",
	}}
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}, {Name: "worker"}, {Name: "metrics"}}}
	s, err := podSettings(meta, spec, DefaultConfig(), targetPod)
	if err != nil {
		t.Fatal(err)
	}
	want := settings{
		image: "mirror.example/ddi:v0.1.0", port: 7600, mode: ModeContainer, logLevel: "debug",
		resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		dependencies:  "db=postgresql@^15 ; cache=redis@^7",
		appContainers: []string{"web", "worker"},
	}
	if diff := cmp.Diff(want, s, cmp.AllowUnexported(settings{}), quantityEqual); diff != "" {
		t.Errorf("podSettings() (-want +got):\n%s", diff)
	}
}

func TestPodSettingsModes(t *testing.T) {
	plainCluster := DefaultConfig()
	plainCluster.NativeSidecars = false
	istioFirst := &corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "istio-init"}},
		Containers:     []corev1.Container{{Name: "app"}, {Name: "istio-proxy"}},
	}
	job := &corev1.PodSpec{RestartPolicy: corev1.RestartPolicyOnFailure, Containers: []corev1.Container{{Name: "app"}}}
	tests := []struct {
		name   string
		cfg    Config
		mode   string // annotation; "" for none
		app    string // AnnotationAppContainers; "" for none
		spec   *corev1.PodSpec
		target target
		want   string
	}{
		{name: "long-running pod", cfg: DefaultConfig(), want: ModeOrdered},
		{name: "long-running pod, old cluster", cfg: plainCluster, want: ModeOrdered},
		{name: "pod that runs to completion", cfg: DefaultConfig(), spec: job, want: ModeNative},
		{name: "pod asks for a container", cfg: DefaultConfig(), mode: ModeContainer, want: ModeContainer},
		{name: "pod asks for a native sidecar", cfg: DefaultConfig(), mode: ModeNative, want: ModeNative},
		{name: "Knative template", cfg: DefaultConfig(), target: targetKnativeTemplate, want: ModeContainer},
		{name: "an init container uses ddi", cfg: DefaultConfig(), app: "migrate,app",
			spec: &corev1.PodSpec{InitContainers: []corev1.Container{{Name: "migrate"}}, Containers: []corev1.Container{{Name: "app"}}},
			want: ModeNative},
		{name: "plain Istio proxy injected first", cfg: DefaultConfig(), spec: istioFirst, want: ModeOrdered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := &metav1.ObjectMeta{}
			meta.Annotations = map[string]string{}
			if tt.mode != "" {
				meta.Annotations[AnnotationSidecarMode] = tt.mode
			}
			if tt.app != "" {
				meta.Annotations[AnnotationAppContainers] = tt.app
			}
			spec := tt.spec
			if spec == nil {
				spec = &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
			}
			s, err := podSettings(meta, spec, tt.cfg, tt.target)
			if err != nil || s.mode != tt.want {
				t.Errorf("podSettings() mode = %q, %v; want %q, nil", s.mode, err, tt.want)
			}
		})
	}
}

// TestPodSettingsBadAnnotations checks that every bad value is refused with
// an error that names the annotation to fix.
func TestPodSettingsBadAnnotations(t *testing.T) {
	plainCluster := DefaultConfig()
	plainCluster.NativeSidecars = false
	tests := []struct {
		name        string
		annotations map[string]string
		spec        *corev1.PodSpec
		cfg         *Config
		target      target
		want        string
	}{
		{name: "metrics port not a number", annotations: map[string]string{AnnotationMetricsPort: "metrics"},
			want: `annotation ddi.dev/sidecar-metrics-port: "metrics" is not a port number (0 turns the metrics listener off)`},
		{name: "metrics port reserved", annotations: map[string]string{AnnotationMetricsPort: "15020"},
			want: `annotation ddi.dev/sidecar-metrics-port: 15020 is reserved by Istio`},
		{name: "metrics port is the API port", annotations: map[string]string{AnnotationMetricsPort: "7471"},
			want: `annotation ddi.dev/sidecar-metrics-port: 7471 is the sidecar's API port`},
		{name: "metrics port taken by a container", spec: &corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: DefaultMetricsPort}}}}},
			want: `container "app" declares port 9471, where the ddi sidecar serves its metrics: set annotation ddi.dev/sidecar-metrics-port to a free port, or to 0 for none`},
		{name: "mode", annotations: map[string]string{AnnotationSidecarMode: "sidecar"},
			want: `annotation ddi.dev/sidecar-mode: "sidecar" is not a sidecar mode: use "ordered", "native" or "container"`},
		{name: "native on an old cluster", cfg: &plainCluster, annotations: map[string]string{AnnotationSidecarMode: ModeNative},
			want: "annotation ddi.dev/sidecar-mode: this cluster does not run native sidecars"},
		{name: "native in a Knative template", target: targetKnativeTemplate, annotations: map[string]string{AnnotationSidecarMode: ModeNative},
			want: "annotation ddi.dev/sidecar-mode: Knative refuses init containers"},
		{name: "native behind a plain Istio proxy", annotations: map[string]string{AnnotationSidecarMode: ModeNative},
			spec: &corev1.PodSpec{InitContainers: []corev1.Container{{Name: "istio-init"}}, Containers: []corev1.Container{{Name: "app"}, {Name: "istio-proxy"}}},
			want: "annotation ddi.dev/sidecar-mode: istio-proxy was injected first"},
		{name: "image", annotations: map[string]string{AnnotationSidecarImage: "ddi:v1 --privileged"},
			want: "annotation ddi.dev/sidecar-image: image reference"},
		{name: "port not a number", annotations: map[string]string{AnnotationSidecarPort: "http"},
			want: `annotation ddi.dev/sidecar-port: "http" is not a port number`},
		{name: "port reserved", annotations: map[string]string{AnnotationSidecarPort: "15020"},
			want: "annotation ddi.dev/sidecar-port: 15020 is reserved by Istio"},
		{name: "port taken by the function", spec: &corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 7471}}}}},
			want: `container "app" declares port 7471, which the ddi sidecar listens on: set annotation ddi.dev/sidecar-port`},
		{name: "cpu request", annotations: map[string]string{AnnotationCPURequest: "ten"},
			want: `annotation ddi.dev/sidecar-cpu-request: "ten" is not a quantity`},
		{name: "cpu limit", annotations: map[string]string{AnnotationCPULimit: "1 core"},
			want: `annotation ddi.dev/sidecar-cpu-limit: "1 core" is not a quantity`},
		{name: "memory request negative", annotations: map[string]string{AnnotationMemoryRequest: "-1Mi"},
			want: `annotation ddi.dev/sidecar-memory-request: "-1Mi" is negative`},
		{name: "memory limit", annotations: map[string]string{AnnotationMemoryLimit: "64MB!"},
			want: `annotation ddi.dev/sidecar-memory-limit: "64MB!" is not a quantity`},
		{name: "request above limit", annotations: map[string]string{AnnotationMemoryRequest: "128Mi"},
			want: "sidecar memory request 128Mi is above its limit 64Mi: adjust annotation ddi.dev/sidecar-memory-request or ddi.dev/sidecar-memory-limit"},
		{name: "log level", annotations: map[string]string{AnnotationLogLevel: "trace"},
			want: `annotation ddi.dev/log-level: "trace" is not one of debug, info, warn, error`},
		{name: "dependencies syntax", annotations: map[string]string{AnnotationDependencies: "db postgresql"},
			want: `annotation ddi.dev/dependencies: dependency "db postgresql" must be ALIAS=SELECTOR`},
		{name: "dependencies range", annotations: map[string]string{AnnotationDependencies: "db=postgresql@"},
			want: "annotation ddi.dev/dependencies: dependency \"db\": selector \"postgresql@\": empty version range"},
		{name: "dependencies twice", annotations: map[string]string{AnnotationDependencies: "db=a;db=b"},
			want: `annotation ddi.dev/dependencies: dependency alias "db" is declared twice`},
		{name: "unknown app container", annotations: map[string]string{AnnotationAppContainers: "web"},
			want: `annotation ddi.dev/app-containers: the pod has no container "web"`},
		{name: "empty app container list", annotations: map[string]string{AnnotationAppContainers: " , "},
			want: "annotation ddi.dev/app-containers: lists no container"},
		{name: "init container with a plain sidecar", annotations: map[string]string{AnnotationAppContainers: "migrate", AnnotationSidecarMode: ModeContainer},
			spec: &corev1.PodSpec{InitContainers: []corev1.Container{{Name: "migrate"}}, Containers: []corev1.Container{{Name: "app"}}},
			want: `annotation ddi.dev/app-containers: init container "migrate" runs before a plain sidecar container starts`},
		{name: "job with a plain sidecar", annotations: map[string]string{AnnotationSidecarMode: ModeContainer},
			spec: &corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "app"}}},
			want: "the pod runs to completion (restartPolicy Never) and a plain sidecar container (mode container) would keep it running forever"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				cfg = *tt.cfg
			}
			spec := tt.spec
			if spec == nil {
				spec = &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
			}
			_, err := podSettings(&metav1.ObjectMeta{Annotations: tt.annotations}, spec, cfg, tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("podSettings() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestPodSettingsReportsEveryBadAnnotation(t *testing.T) {
	meta := &metav1.ObjectMeta{Annotations: map[string]string{
		AnnotationCPURequest: "x", AnnotationLogLevel: "loud", AnnotationDependencies: "=",
	}}
	_, err := podSettings(meta, &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}, DefaultConfig(), targetPod)
	for _, key := range []string{AnnotationCPURequest, AnnotationLogLevel, AnnotationDependencies} {
		if err == nil || !strings.Contains(err.Error(), "annotation "+key+":") {
			t.Errorf("podSettings() error = %v, want it to name %s", err, key)
		}
	}
}

// TestScrapeAnnotations: the injector points Prometheus at the sidecar's
// metrics listener, but never over a scrape target the pod names itself,
// and not at all with the listener off.
func TestScrapeAnnotations(t *testing.T) {
	for _, tt := range []struct {
		name        string
		annotations map[string]string
		want        map[string]string
	}{
		{name: "none of its own", want: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9471", "prometheus.io/path": "/metrics"}},
		{name: "the function's own", annotations: map[string]string{"prometheus.io/port": "8080"}, want: map[string]string{"prometheus.io/port": "8080"}},
		{name: "listener off", annotations: map[string]string{AnnotationMetricsPort: "0"}, want: map[string]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
			for k, v := range tt.annotations {
				pod.Annotations[k] = v
			}
			if _, err := Pod(pod, DefaultConfig()); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range pod.Annotations {
				if strings.HasPrefix(k, "prometheus.io/") {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("prometheus.io annotations (-want +got):\n%s", diff)
			}
			listen := ""
			for _, e := range pod.Spec.Containers[0].Env {
				if e.Name == EnvMetricsListen {
					listen = e.Value
				}
			}
			if wantListen := map[bool]string{true: ":9471", false: ""}[tt.annotations[AnnotationMetricsPort] != "0"]; listen != wantListen {
				t.Errorf("sidecar %s = %q, want %q", EnvMetricsListen, listen, wantListen)
			}
		})
	}
}
