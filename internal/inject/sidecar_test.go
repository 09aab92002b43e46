package inject

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"ddi.dev/ddi/internal/testpki"
)

func testSettings(mode string) settings {
	return settings{image: DefaultImage, port: DefaultPort, mode: mode, logLevel: "info",
		resources: DefaultConfig().Resources, dependencies: "db=postgresql@^15"}
}

func envNames(env []corev1.EnvVar) []string {
	var names []string
	for _, e := range env {
		names = append(names, e.Name)
	}
	return names
}

func TestSidecarContainerNative(t *testing.T) {
	c := sidecarContainer(testSettings(ModeNative), DefaultConfig(), targetPod)
	if c.Name != SidecarName || c.Image != DefaultImage {
		t.Errorf("sidecar name, image = %q, %q; want %q, %q", c.Name, c.Image, SidecarName, DefaultImage)
	}
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("native sidecar restartPolicy = %v, want Always", c.RestartPolicy)
	}
	if len(c.Ports) != 0 {
		t.Errorf("sidecar declares ports %v; Knative allows only the function's", c.Ports)
	}
	if c.ReadinessProbe != nil {
		t.Errorf("sidecar has a readiness probe; it must not gate the pod's readiness")
	}
	if c.StartupProbe != nil {
		t.Errorf("native sidecar has a startup probe: the kubelet would run it only on its next probe tick, up to a second after the sidecar is ready")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.Exec == nil {
		t.Errorf("livenessProbe = %+v, want an exec probe", c.LivenessProbe)
	} else if diff := cmp.Diff([]string{"ddi", "probe", "http://127.0.0.1:7471/healthz"}, c.LivenessProbe.Exec.Command); diff != "" {
		t.Errorf("livenessProbe command (-want +got):\n%s", diff)
	}
	// The postStart hook holds the function until the sidecar is ready,
	// as in ordered mode.
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil || c.Lifecycle.PostStart.Exec == nil {
		t.Fatalf("native sidecar has no postStart exec hook (lifecycle %+v)", c.Lifecycle)
	}
	if diff := cmp.Diff([]string{"ddi", "probe", "--wait=5m0s", "http://127.0.0.1:7471/readyz?wait=5m0s"}, c.Lifecycle.PostStart.Exec.Command); diff != "" {
		t.Errorf("postStart command (-want +got):\n%s", diff)
	}
	want := []string{EnvListen, EnvControlPlane, EnvLogLevel, EnvBindingRoot, EnvTokenFile, EnvPodInfoDir, EnvDependencies,
		EnvPodName, EnvPodNamespace, EnvPodUID, EnvServiceAccount}
	if diff := cmp.Diff(want, envNames(c.Env)); diff != "" {
		t.Errorf("sidecar env (-want +got):\n%s", diff)
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("security context %+v does not meet the restricted standard", sc)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts[VolumeToken]; m.MountPath != TokenDir || !m.ReadOnly {
		t.Errorf("token mount = %+v, want read-only at %s", m, TokenDir)
	}
	if m := mounts[VolumeBindings]; m.MountPath != DefaultBindingRoot || m.ReadOnly {
		t.Errorf("bindings mount = %+v, want writable at %s", m, DefaultBindingRoot)
	}
}

func TestSidecarContainerPlain(t *testing.T) {
	c := sidecarContainer(testSettings(ModeContainer), DefaultConfig(), targetPod)
	if c.RestartPolicy != nil {
		t.Errorf("plain sidecar has restartPolicy %v; only init containers may", *c.RestartPolicy)
	}
	if c.StartupProbe == nil || c.LivenessProbe == nil {
		t.Errorf("plain sidecar lacks its probes")
	}
}

func TestSidecarContainerKnativeTemplate(t *testing.T) {
	c := sidecarContainer(testSettings(ModeContainer), DefaultConfig(), targetKnativeTemplate)
	if c.StartupProbe != nil || c.LivenessProbe != nil {
		t.Errorf("Knative template sidecar has probes; Knative refuses them on extra containers by default")
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("env %s uses valueFrom; Knative refuses fieldRef by default", e.Name)
		}
	}
}

func TestSidecarContainerWithoutDependencies(t *testing.T) {
	s := testSettings(ModeNative)
	s.dependencies = ""
	c := sidecarContainer(s, DefaultConfig(), targetPod)
	if slices.Contains(envNames(c.Env), EnvDependencies) {
		t.Errorf("sidecar env has %s though the pod declares no dependencies", EnvDependencies)
	}
}

func TestInsertSidecar(t *testing.T) {
	names := func(cs []corev1.Container) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	native := sidecarContainer(testSettings(ModeNative), DefaultConfig(), targetPod)
	plain := sidecarContainer(testSettings(ModeContainer), DefaultConfig(), targetPod)
	ordered := sidecarContainer(testSettings(ModeOrdered), DefaultConfig(), targetPod)
	tests := []struct {
		name           string
		init, main     []string
		sidecar        corev1.Container
		wantInit, want []string
	}{
		{name: "ordered first", main: []string{"user-container", "queue-proxy"}, sidecar: ordered,
			want: []string{SidecarName, "user-container", "queue-proxy"}},
		{name: "ordered after an Istio proxy that starts first", init: []string{"istio-init"}, main: []string{"istio-proxy", "app"}, sidecar: ordered,
			wantInit: []string{"istio-init"}, want: []string{"istio-proxy", SidecarName, "app"}},
		{name: "ordered after an Istio proxy that starts last", init: []string{"istio-init"}, main: []string{"app", "istio-proxy"}, sidecar: ordered,
			wantInit: []string{"istio-init"}, want: []string{"app", "istio-proxy", SidecarName}},
		{name: "ordered first with Istio's native proxy", init: []string{"istio-init", "istio-proxy"}, main: []string{"app"}, sidecar: ordered,
			wantInit: []string{"istio-init", "istio-proxy"}, want: []string{SidecarName, "app"}},
		{name: "native first", init: []string{"migrate"}, main: []string{"app"}, sidecar: native,
			wantInit: []string{SidecarName, "migrate"}, want: []string{"app"}},
		{name: "native after Istio's", init: []string{"istio-init", "istio-proxy", "migrate"}, main: []string{"app"}, sidecar: native,
			wantInit: []string{"istio-init", "istio-proxy", SidecarName, "migrate"}, want: []string{"app"}},
		{name: "native after Linkerd's", init: []string{"linkerd-init", "linkerd-proxy"}, main: []string{"app"}, sidecar: native,
			wantInit: []string{"linkerd-init", "linkerd-proxy", SidecarName}, want: []string{"app"}},
		{name: "plain last", main: []string{"user-container", "queue-proxy"}, sidecar: plain,
			want: []string{"user-container", "queue-proxy", SidecarName}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &corev1.PodSpec{}
			for _, n := range tt.init {
				spec.InitContainers = append(spec.InitContainers, corev1.Container{Name: n})
			}
			for _, n := range tt.main {
				spec.Containers = append(spec.Containers, corev1.Container{Name: n})
			}
			mode := ModeContainer
			switch {
			case tt.sidecar.RestartPolicy != nil:
				mode = ModeNative
			case tt.sidecar.Lifecycle != nil:
				mode = ModeOrdered
			}
			insertSidecar(spec, tt.sidecar, mode)
			if diff := cmp.Diff(tt.wantInit, names(spec.InitContainers)); diff != "" {
				t.Errorf("init containers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, names(spec.Containers)); diff != "" {
				t.Errorf("containers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSidecarEnvControlPlaneCA(t *testing.T) {
	ca := string(testpki.CAPEM(t))
	tests := []struct {
		name   string
		ca     string
		target target
		want   []string
	}{
		{name: "no CA, no variable", target: targetPod,
			want: []string{EnvListen, EnvControlPlane, EnvLogLevel, EnvBindingRoot, EnvTokenFile, EnvPodInfoDir, EnvDependencies,
				EnvPodName, EnvPodNamespace, EnvPodUID, EnvServiceAccount}},
		{name: "CA after the URL", ca: ca, target: targetPod,
			want: []string{EnvListen, EnvControlPlane, EnvControlPlaneCA, EnvLogLevel, EnvBindingRoot, EnvTokenFile, EnvPodInfoDir, EnvDependencies,
				EnvPodName, EnvPodNamespace, EnvPodUID, EnvServiceAccount}},
		{name: "CA in a Knative template", ca: ca, target: targetKnativeTemplate,
			want: []string{EnvListen, EnvControlPlane, EnvControlPlaneCA, EnvLogLevel, EnvBindingRoot, EnvTokenFile, EnvPodInfoDir, EnvDependencies}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ControlPlaneCA = tt.ca
			env := sidecarEnv(testSettings(ModeNative), cfg, tt.target)
			if diff := cmp.Diff(tt.want, envNames(env)); diff != "" {
				t.Errorf("sidecar env (-want +got):\n%s", diff)
			}
			for _, e := range env {
				if e.Name == EnvControlPlaneCA && (e.Value != tt.ca || e.ValueFrom != nil) {
					t.Errorf("%s = %q (valueFrom %v), want the CA bundle itself", e.Name, e.Value, e.ValueFrom)
				}
			}
		})
	}
}

func TestPodCarriesControlPlaneCA(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ControlPlaneCA = string(testpki.CAPEM(t))
	pod := newPod(nil)
	if changed, err := Pod(pod, cfg); err != nil || !changed {
		t.Fatalf("Pod() = %v, %v; want true, nil", changed, err)
	}
	var got []string
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, e := range c.Env {
				if e.Name == EnvControlPlaneCA {
					got = append(got, c.Name)
					if e.Value != cfg.ControlPlaneCA {
						t.Errorf("%s of %s = %q, want Config.ControlPlaneCA", e.Name, c.Name, e.Value)
					}
				}
			}
		}
	}
	// Only the sidecar talks to the control plane.
	if diff := cmp.Diff([]string{SidecarName}, got); diff != "" {
		t.Errorf("containers with %s (-want +got):\n%s", EnvControlPlaneCA, diff)
	}
}
