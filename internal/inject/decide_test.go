package inject

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDecide(t *testing.T) {
	enabled := map[string]string{KeyInject: NamespaceEnabled}
	disabled := map[string]string{KeyInject: NamespaceDisabled}
	app := corev1.Container{Name: "app", Image: "app:1"}
	tests := []struct {
		name        string
		ns          map[string]string
		labels      map[string]string
		annotations map[string]string
		spec        corev1.PodSpec
		wantInject  bool
		wantReason  string
	}{
		{name: "enabled namespace", ns: enabled, wantInject: true,
			wantReason: "namespace label ddi.dev/inject=enabled"},
		{name: "pod label true", labels: map[string]string{KeyInject: "true"}, wantInject: true,
			wantReason: "pod label ddi.dev/inject=true"},
		{name: "pod annotation true", annotations: map[string]string{KeyInject: "true"}, wantInject: true,
			wantReason: "pod annotation ddi.dev/inject=true"},
		{name: "value is case-insensitive", annotations: map[string]string{KeyInject: "True"}, wantInject: true,
			wantReason: "pod annotation ddi.dev/inject=true"},
		{name: "nothing", wantReason: "not opted in: neither namespace label ddi.dev/inject=enabled nor pod label or annotation ddi.dev/inject=true"},
		{name: "namespace label with another value", ns: map[string]string{KeyInject: "yes"},
			wantReason: "not opted in: neither namespace label ddi.dev/inject=enabled nor pod label or annotation ddi.dev/inject=true"},
		{name: "pod false in enabled namespace", ns: enabled, labels: map[string]string{KeyInject: "false"},
			wantReason: "opted out by pod label ddi.dev/inject=false"},
		{name: "annotation false beats label true", labels: map[string]string{KeyInject: "true"}, annotations: map[string]string{KeyInject: "false"},
			wantReason: "opted out by pod annotation ddi.dev/inject=false"},
		{name: "pod true in disabled namespace", ns: disabled, labels: map[string]string{KeyInject: "true"},
			wantReason: "namespace label ddi.dev/inject=disabled"},
		{name: "invalid pod value", ns: enabled, annotations: map[string]string{KeyInject: "yes"},
			wantReason: `pod annotation ddi.dev/inject has the value "yes": use "true" or "false"`},
		{name: "already injected by annotation", ns: enabled, annotations: map[string]string{AnnotationInjectedVersion: "v0.1.0"},
			wantReason: "already injected (annotation ddi.dev/injected-version=v0.1.0)"},
		{name: "already injected by container", ns: enabled,
			spec:       corev1.PodSpec{InitContainers: []corev1.Container{{Name: SidecarName}}, Containers: []corev1.Container{app}},
			wantReason: "already injected (the pod has a container named ddi-sidecar)"},
		{name: "host network", ns: enabled, spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{app}},
			wantReason: "the pod uses hostNetwork: a loopback sidecar would share the node's network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			if spec.Containers == nil {
				spec.Containers = []corev1.Container{app}
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: tt.labels, Annotations: tt.annotations}, Spec: spec}
			inject, reason := Decide(tt.ns, pod)
			if inject != tt.wantInject || reason != tt.wantReason {
				t.Errorf("Decide() = %v, %q; want %v, %q", inject, reason, tt.wantInject, tt.wantReason)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	app := corev1.Container{Name: "app", Image: "app:1"}
	tests := []struct {
		name        string
		ns          map[string]string
		labels      map[string]string
		annotations map[string]string
		spec        corev1.PodSpec
		want        Decision
	}{
		{name: "nothing asked",
			want: Decision{Reason: "not opted in: neither namespace label ddi.dev/inject=enabled nor pod label or annotation ddi.dev/inject=true"}},
		{name: "namespace label with any value asks", ns: map[string]string{KeyInject: "yes"},
			want: Decision{Asked: true, Reason: "not opted in: neither namespace label ddi.dev/inject=enabled nor pod label or annotation ddi.dev/inject=true"}},
		{name: "dependencies annotation asks", annotations: map[string]string{AnnotationDependencies: "greeter"},
			want: Decision{Asked: true, Reason: "not opted in: neither namespace label ddi.dev/inject=enabled nor pod label or annotation ddi.dev/inject=true"}},
		{name: "pod label false asks", labels: map[string]string{KeyInject: "false"},
			want: Decision{Asked: true, Reason: "opted out by pod label ddi.dev/inject=false"}},
		{name: "invalid pod value asks", annotations: map[string]string{KeyInject: "yes"},
			want: Decision{Asked: true, Reason: `pod annotation ddi.dev/inject has the value "yes": use "true" or "false"`}},
		{name: "injected by container", ns: map[string]string{KeyInject: NamespaceEnabled},
			spec: corev1.PodSpec{Containers: []corev1.Container{app, {Name: SidecarName}}},
			want: Decision{Asked: true, Injected: true, Reason: "already injected (the pod has a container named ddi-sidecar)"}},
		{name: "injected by annotation, nothing asked", annotations: map[string]string{AnnotationInjectedVersion: "v0.1.0"},
			want: Decision{Injected: true, Reason: "already injected (annotation ddi.dev/injected-version=v0.1.0)"}},
		{name: "injects", labels: map[string]string{KeyInject: "true"},
			want: Decision{Inject: true, Asked: true, Reason: "pod label ddi.dev/inject=true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			if spec.Containers == nil {
				spec.Containers = []corev1.Container{app}
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: tt.labels, Annotations: tt.annotations}, Spec: spec}
			got := Evaluate(tt.ns, pod)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
			if inject, reason := Decide(tt.ns, pod); inject != got.Inject || reason != got.Reason {
				t.Errorf("Decide() = %v, %q; want Evaluate's %v, %q", inject, reason, got.Inject, got.Reason)
			}
		})
	}
}
