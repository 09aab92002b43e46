package deploy

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/testpki"
)

// hardened checks one container of a pod against what ddi's own
// containers promise: non-root, read-only root filesystem, no privilege
// escalation, no capabilities, the runtime's default seccomp profile.
// Pod-level settings count where the container leaves them unset.
func hardened(pod *corev1.PodSpec, c *corev1.Container) []string {
	var bad []string
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if !ptr.Deref(sc.RunAsNonRoot, ptr.Deref(psc.RunAsNonRoot, false)) {
		bad = append(bad, "runAsNonRoot is not true")
	}
	if uid := sc.RunAsUser; uid != nil && *uid == 0 || sc.RunAsUser == nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		bad = append(bad, "runAsUser is 0")
	}
	if !ptr.Deref(sc.ReadOnlyRootFilesystem, false) {
		bad = append(bad, "readOnlyRootFilesystem is not true")
	}
	if ptr.Deref(sc.AllowPrivilegeEscalation, true) {
		bad = append(bad, "allowPrivilegeEscalation is not false")
	}
	if ptr.Deref(sc.Privileged, false) {
		bad = append(bad, "privileged")
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
		bad = append(bad, "capabilities are not drop [ALL], add none")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad = append(bad, "seccompProfile is not RuntimeDefault")
	}
	return bad
}

// TestControllerSecurityContext checks the rendered controller Deployment:
// every container hardened, nothing of the host shared.
func TestControllerSecurityContext(t *testing.T) {
	dep := rendered[appsv1.Deployment](t, render(t), "Deployment", "ddi-controller")
	spec := &dep.Spec.Template.Spec
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("pod template shares the host's namespaces: hostNetwork %t, hostPID %t, hostIPC %t", spec.HostNetwork, spec.HostPID, spec.HostIPC)
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s is a hostPath", v.Name)
		}
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			if bad := hardened(spec, &cs[i]); len(bad) > 0 {
				t.Errorf("container %s: %s", cs[i].Name, strings.Join(bad, "; "))
			}
		}
	}
}

// restrictedFunction is a function pod that itself meets the "restricted"
// Pod Security Standard.
func restrictedFunction(ns, name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "fn", Image: "example.com/fn:1",
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// TestPodSecurityRestricted creates, in a namespace that enforces the
// "restricted" Pod Security Standard on a real API server, a pod from the
// controller Deployment's template and function pods run through the real
// injector: the API server's PodSecurity admission must admit them all. A
// pod that breaks the standard is refused, so the namespace does enforce.
func TestPodSecurityRestricted(t *testing.T) {
	objs := render(t)
	dep := rendered[appsv1.Deployment](t, objs, "Deployment", "ddi-controller")
	ns := rendered[corev1.Namespace](t, objs, "Namespace", "ddi-system")
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace ddi-system enforces Pod Security %q, want restricted", got)
	}

	cp := kubetest.RunControlPlane(t, kubetest.Options{NoController: true, SkipCRDs: true})
	const restricted = "restricted"
	cp.Namespace(t, restricted, map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	})
	cp.ServiceAccount(t, restricted, dep.Spec.Template.Spec.ServiceAccountName)

	controllerPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: restricted, Name: "controller", Labels: dep.Spec.Template.Labels, Annotations: dep.Spec.Template.Annotations},
		Spec:       *dep.Spec.Template.Spec.DeepCopy(),
	}
	cfg := inject.DefaultConfig()
	cfg.ControlPlaneCA = string(testpki.CAPEM(t))
	injected := func(name string, annotations map[string]string, native bool) *corev1.Pod {
		pod := restrictedFunction(restricted, name, annotations)
		c := cfg
		c.NativeSidecars = native
		if changed, err := inject.Pod(pod, c); err != nil || !changed {
			t.Fatalf("inject.Pod(%s) = %t, %v; want the sidecar added", name, changed, err)
		}
		return pod
	}
	noSecurityContext := restrictedFunction(restricted, "not-restricted", nil)
	noSecurityContext.Spec.SecurityContext = nil
	noSecurityContext.Spec.Containers[0].SecurityContext = nil

	tests := []struct {
		name  string
		pod   *corev1.Pod
		admit bool
	}{
		{name: "controller Deployment's pod template", pod: controllerPod, admit: true},
		{name: "function with a native sidecar", pod: injected("native", nil, true), admit: true},
		{name: "function with a plain sidecar container", pod: injected("plain", map[string]string{inject.AnnotationSidecarMode: inject.ModeContainer}, false), admit: true},
		{name: "function that breaks the standard itself", pod: noSecurityContext, admit: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cs := range [][]corev1.Container{tt.pod.Spec.InitContainers, tt.pod.Spec.Containers} {
				for i := range cs {
					if cs[i].Name != inject.SidecarName {
						continue
					}
					if bad := hardened(&tt.pod.Spec, &cs[i]); len(bad) > 0 {
						t.Errorf("injected sidecar: %s", strings.Join(bad, "; "))
					}
				}
			}
			_, err := cp.Clientset.CoreV1().Pods(restricted).Create(t.Context(), tt.pod, metav1.CreateOptions{})
			switch {
			case tt.admit && err != nil:
				t.Errorf("create pod %s in a restricted namespace: %v, want it admitted", tt.pod.Name, err)
			case !tt.admit && (err == nil || !strings.Contains(err.Error(), "violates PodSecurity")):
				t.Errorf("create pod %s in a restricted namespace: error %v, want it refused by PodSecurity", tt.pod.Name, err)
			}
		})
	}
}
