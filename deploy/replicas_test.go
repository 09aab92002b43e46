package deploy

import (
	"path"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"ddi.dev/ddi/internal/controller"
)

// TestReplicasReachEachOther checks what the controller's replicas need
// to merge their sidecars (docs/kubernetes.md, "Replicas"), in what
// deploy/ renders: more than one replica; each pod's name in $POD_NAME;
// a projected token of the controller's service account for the
// audience the controller expects, at the path it reads by default; the
// Service port named stream (the replicas dial its EndpointSlice port)
// on the container port stream; and a NetworkPolicy that admits the
// controller's own pods to that port.
func TestReplicasReachEachOther(t *testing.T) {
	objs := render(t)
	dep := rendered[appsv1.Deployment](t, objs, "Deployment", "ddi-controller")
	svc := rendered[corev1.Service](t, objs, "Service", "ddi-controller")
	np := rendered[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "ddi-controller")
	spec := dep.Spec.Template.Spec
	c := spec.Containers[0]

	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("replicas = %v, want at least 2 (this test is about them)", dep.Spec.Replicas)
	}
	if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAME" }); i < 0 ||
		c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("the controller's env has no POD_NAME from metadata.name: %+v", c.Env)
	}

	// The token: a projected service account token for the replicas'
	// audience, mounted where --replica-token-file points by default.
	dir, file := path.Split(controller.DefaultReplicaTokenFile)
	mi := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return path.Clean(m.MountPath) == path.Clean(dir) })
	if mi < 0 {
		t.Fatalf("no volume is mounted at %s (the default --replica-token-file %s): %+v", dir, controller.DefaultReplicaTokenFile, c.VolumeMounts)
	}
	vi := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[mi].Name })
	if vi < 0 || spec.Volumes[vi].Projected == nil {
		t.Fatalf("volume %s is not a projected volume", c.VolumeMounts[mi].Name)
	}
	var tok *corev1.ServiceAccountTokenProjection
	for _, src := range spec.Volumes[vi].Projected.Sources {
		if src.ServiceAccountToken != nil && src.ServiceAccountToken.Path == file {
			tok = src.ServiceAccountToken
		}
	}
	switch {
	case tok == nil:
		t.Errorf("volume %s projects no service account token at %s", spec.Volumes[vi].Name, file)
	case tok.Audience != controller.DefaultReplicaAudience:
		t.Errorf("the replica token's audience = %q, want %q (--replica-token-audience)", tok.Audience, controller.DefaultReplicaAudience)
	case tok.Audience == controller.DefaultTokenAudience || tok.Audience == "":
		t.Errorf("the replica token's audience %q is the sidecars' or the API server's", tok.Audience)
	}
	if spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken is false: the controller needs its API token")
	}

	// The port the replicas dial, named in the EndpointSlices.
	si := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "stream" })
	if si < 0 || svc.Spec.Ports[si].TargetPort.StrVal != "stream" {
		t.Errorf("Service ddi-controller has no port stream targeting the container port stream: %+v", svc.Spec.Ports)
	}
	pi := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "stream" })
	if pi < 0 {
		t.Fatalf("the controller has no container port stream")
	}

	// The controller's own pods may reach that port of each other.
	allowed := false
	for _, rule := range np.Spec.Ingress {
		if !rulePort(rule.Ports, c.Ports[pi]) {
			continue
		}
		if len(rule.From) == 0 {
			allowed = true
		}
		for _, peer := range rule.From {
			if peer.IPBlock != nil {
				continue
			}
			nsOK := peer.NamespaceSelector != nil && labelsEmpty(peer.NamespaceSelector)
			if peer.NamespaceSelector == nil {
				nsOK = true // the policy's own namespace, ddi-system
			}
			podOK := peer.PodSelector == nil || labels.SelectorFromSet(peer.PodSelector.MatchLabels).Matches(labels.Set(dep.Spec.Template.Labels))
			if nsOK && podOK && (peer.PodSelector == nil || len(peer.PodSelector.MatchExpressions) == 0) {
				allowed = true
			}
		}
	}
	if !allowed {
		t.Errorf("the NetworkPolicy does not admit the controller's pods to port stream of each other")
	}
}
