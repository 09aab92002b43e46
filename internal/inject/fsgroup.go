package inject

import corev1 "k8s.io/api/core/v1"

// SidecarGroup is the group the sidecar image runs as. It becomes the
// pod's fsGroup when the pod has none.
const SidecarGroup int64 = 65532

// setFSGroup gives the pod an fsGroup when it has none. The binding volume
// then belongs to that group, every container of the pod has it as a
// supplementary group, and the sidecar writes secret files mode 0640 in
// it: a function container running as any user reads its own password,
// and no one outside the pod can. A pod that sets its own fsGroup keeps
// it (the sidecar gives the files that group instead).
//
// OnRootMismatch keeps the kubelet from walking the pod's other volumes
// on every start. A Knative template is left alone: Knative refuses a
// pod-level fsGroup unless its kubernetes.podspec-securitycontext feature
// is on; the Pod webhook sets it on the Revision's pods instead.
func setFSGroup(spec *corev1.PodSpec, t target) {
	if t == targetKnativeTemplate {
		return
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	sc := spec.SecurityContext
	if sc.FSGroup != nil {
		return
	}
	g := SidecarGroup
	sc.FSGroup = &g
	if sc.FSGroupChangePolicy == nil {
		p := corev1.FSGroupChangeOnRootMismatch
		sc.FSGroupChangePolicy = &p
	}
}
