package inject

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestSetFSGroup(t *testing.T) {
	tests := []struct {
		name       string
		sc         *corev1.PodSecurityContext
		target     target
		wantGroup  *int64
		wantPolicy *corev1.PodFSGroupChangePolicy
	}{
		{name: "no security context", target: targetPod,
			wantGroup: ptr.To(SidecarGroup), wantPolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch)},
		{name: "security context without fsGroup", sc: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)}, target: targetPod,
			wantGroup: ptr.To(SidecarGroup), wantPolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch)},
		{name: "the pod's own fsGroup stays", sc: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000)}, target: targetPod,
			wantGroup: ptr.To[int64](2000)},
		{name: "the pod's own change policy stays", sc: &corev1.PodSecurityContext{FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeAlways)}, target: targetPod,
			wantGroup: ptr.To(SidecarGroup), wantPolicy: ptr.To(corev1.FSGroupChangeAlways)},
		{name: "Knative template untouched", target: targetKnativeTemplate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &corev1.PodSpec{SecurityContext: tt.sc}
			setFSGroup(spec, tt.target)
			var gotGroup *int64
			var gotPolicy *corev1.PodFSGroupChangePolicy
			if spec.SecurityContext != nil {
				gotGroup, gotPolicy = spec.SecurityContext.FSGroup, spec.SecurityContext.FSGroupChangePolicy
			}
			if !equalPtr(gotGroup, tt.wantGroup) {
				t.Errorf("fsGroup = %v, want %v", deref(gotGroup), deref(tt.wantGroup))
			}
			if !equalPtr(gotPolicy, tt.wantPolicy) {
				t.Errorf("fsGroupChangePolicy = %v, want %v", deref(gotPolicy), deref(tt.wantPolicy))
			}
		})
	}
}

func equalPtr[T comparable](a, b *T) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}
