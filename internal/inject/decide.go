package inject

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Namespace label values of KeyInject.
const (
	NamespaceEnabled  = "enabled"
	NamespaceDisabled = "disabled"
)

// Decide says whether pod, in a namespace with the given labels, gets the
// sidecar, and why. The reason is a sentence fragment meant for people: the
// webhook records it in an Event when it skips a pod.
//
// In order: an injected pod is never injected again; a pod label or
// annotation ddi.dev/inject "false" opts out; a value other than "true" or
// "false" is ignored with a reason that says so; pods on the host network
// are skipped; a namespace labelled ddi.dev/inject=disabled is skipped
// whatever its pods say; otherwise a pod that says "true", or any pod in a
// namespace labelled ddi.dev/inject=enabled, is injected.
func Decide(namespaceLabels map[string]string, pod *corev1.Pod) (inject bool, reason string) {
	d := decide(namespaceLabels, pod)
	if d.invalid != nil {
		return false, d.invalid.Error()
	}
	return d.inject, d.reason
}

type decision struct {
	inject bool
	reason string
	// invalid is set when the pod's opt-in value is not understood.
	invalid error
}

func decide(namespaceLabels map[string]string, pod *corev1.Pod) decision {
	if v, ok := pod.Annotations[AnnotationInjectedVersion]; ok {
		return decision{reason: fmt.Sprintf("already injected (annotation %s=%s)", AnnotationInjectedVersion, v)}
	}
	if hasSidecar(&pod.Spec) {
		return decision{reason: fmt.Sprintf("already injected (the pod has a container named %s)", SidecarName)}
	}
	optIn, where, err := podOptIn(pod)
	if err != nil {
		return decision{invalid: err}
	}
	if where != "" && !optIn {
		return decision{reason: fmt.Sprintf("opted out by pod %s %s=false", where, KeyInject)}
	}
	if pod.Spec.HostNetwork {
		return decision{reason: "the pod uses hostNetwork: a loopback sidecar would share the node's network"}
	}
	switch namespaceLabels[KeyInject] {
	case NamespaceDisabled:
		return decision{reason: fmt.Sprintf("namespace label %s=%s", KeyInject, NamespaceDisabled)}
	}
	if optIn {
		return decision{inject: true, reason: fmt.Sprintf("pod %s %s=true", where, KeyInject)}
	}
	if namespaceLabels[KeyInject] == NamespaceEnabled {
		return decision{inject: true, reason: fmt.Sprintf("namespace label %s=%s", KeyInject, NamespaceEnabled)}
	}
	return decision{reason: fmt.Sprintf("not opted in: neither namespace label %s=%s nor pod label or annotation %s=true", KeyInject, NamespaceEnabled, KeyInject)}
}

// podOptIn reads the pod's own ddi.dev/inject label and annotation. where
// is "label" or "annotation" when one of them says something; "false" in
// either wins over "true" in the other.
func podOptIn(pod *corev1.Pod) (optIn bool, where string, err error) {
	for _, src := range []struct {
		where string
		m     map[string]string
	}{{"label", pod.Labels}, {"annotation", pod.Annotations}} {
		v, ok := src.m[KeyInject]
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "false":
			return false, src.where, nil
		case "true":
			if where == "" {
				optIn, where = true, src.where
			}
		default:
			return false, "", fmt.Errorf("pod %s %s has the value %q: use \"true\" or \"false\"", src.where, KeyInject, v)
		}
	}
	return optIn, where, nil
}

// hasSidecar reports whether spec already has the ddi sidecar.
func hasSidecar(spec *corev1.PodSpec) bool {
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == SidecarName {
			return true
		}
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == SidecarName {
			return true
		}
	}
	return false
}
