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
	d := Evaluate(namespaceLabels, pod)
	return d.Inject, d.Reason
}

// Decision is the whole of what Evaluate decides about a pod.
type Decision struct {
	// Inject says whether the pod gets the sidecar.
	Inject bool
	// Reason says why, as Decide's reason does.
	Reason string
	// Asked says whether the pod or its namespace expressed any wish
	// about injection: ddi.dev/inject on the namespace, or on the pod as
	// a label or annotation, or the pod's dependencies annotation. A pod
	// that asked and is skipped deserves to be told why; a pod in a
	// namespace that never heard of ddi does not.
	Asked bool
	// Injected says whether the pod already carries the sidecar, as on a
	// reinvocation after another webhook changed it.
	Injected bool
}

// Evaluate decides as Decide does, and also reports whether the pod asked
// for injection and whether it is already injected: the webhook uses these
// to choose the pods it tells why they were skipped.
func Evaluate(namespaceLabels map[string]string, pod *corev1.Pod) Decision {
	d := decide(namespaceLabels, pod)
	out := Decision{Inject: d.inject, Reason: d.reason, Asked: asked(namespaceLabels, pod), Injected: d.injected}
	if d.invalid != nil {
		out.Inject, out.Reason = false, d.invalid.Error()
	}
	return out
}

type decision struct {
	inject bool
	reason string
	// injected is set when the pod already carries the sidecar.
	injected bool
	// invalid is set when the pod's opt-in value is not understood.
	invalid error
}

// asked reports whether the pod or its namespace expressed any wish about
// injection (see Decision.Asked).
func asked(namespaceLabels map[string]string, pod *corev1.Pod) bool {
	if _, ok := namespaceLabels[KeyInject]; ok {
		return true
	}
	if _, ok := pod.Labels[KeyInject]; ok {
		return true
	}
	if _, ok := pod.Annotations[KeyInject]; ok {
		return true
	}
	_, ok := pod.Annotations[AnnotationDependencies]
	return ok
}

func decide(namespaceLabels map[string]string, pod *corev1.Pod) decision {
	if v, ok := pod.Annotations[AnnotationInjectedVersion]; ok {
		return decision{injected: true, reason: fmt.Sprintf("already injected (annotation %s=%s)", AnnotationInjectedVersion, v)}
	}
	if hasSidecar(&pod.Spec) {
		return decision{injected: true, reason: fmt.Sprintf("already injected (the pod has a container named %s)", SidecarName)}
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
