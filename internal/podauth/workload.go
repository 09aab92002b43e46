package podauth

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels that name a pod's workload, in the order WorkloadName tries them.
const (
	LabelKnativeService = "serving.knative.dev/service"
	LabelOpenFaaS       = "faas_function"
	LabelFission        = "functionName"
	LabelAppName        = "app.kubernetes.io/name"
	labelTemplateHash   = "pod-template-hash"
)

// WorkloadName is the consumer name of a pod: the function or workload it
// belongs to, stable across the pod's replicas and restarts. The rule, first
// match wins:
//
//  1. label serving.knative.dev/service: the Knative Service;
//  2. label faas_function: the OpenFaaS function;
//  3. label functionName: the Fission function (set when a pool pod is
//     specialised);
//  4. label app.kubernetes.io/name;
//  5. the controlling owner: a ReplicaSet named <deployment>-<hash> with
//     the pod's pod-template-hash label counts as its Deployment; any other
//     controller (StatefulSet, DaemonSet, Job, ReplicaSet without a
//     Deployment) by its own name;
//  6. the pod's name.
func WorkloadName(pod *corev1.Pod) string {
	for _, l := range []string{LabelKnativeService, LabelOpenFaaS, LabelFission, LabelAppName} {
		if v := pod.Labels[l]; v != "" {
			return v
		}
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		if ref.Kind == "ReplicaSet" {
			if h := pod.Labels[labelTemplateHash]; h != "" {
				if d, ok := strings.CutSuffix(ref.Name, "-"+h); ok && d != "" {
					return d
				}
			}
		}
		return ref.Name
	}
	return pod.Name
}
