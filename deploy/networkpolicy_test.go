package deploy

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Who a NetworkPolicy rule admits.
const (
	fromAnywhere = "anywhere"   // no from: every source, pods, nodes and the API server
	fromAnyPod   = "any pod"    // every pod in every namespace, nothing else
	fromNobody   = "nobody"     // no rule names the port
	fromOther    = "other peer" // anything narrower or stranger
)

// admitted says who the policy's rules admit to port, a container port of
// the selected pods.
func admitted(np *networkingv1.NetworkPolicy, port corev1.ContainerPort) string {
	var who []string
	for _, rule := range np.Spec.Ingress {
		if !rulePort(rule.Ports, port) {
			continue
		}
		switch {
		case len(rule.From) == 0:
			who = append(who, fromAnywhere)
		case len(rule.From) == 1 && rule.From[0].IPBlock == nil && rule.From[0].PodSelector == nil &&
			rule.From[0].NamespaceSelector != nil && labelsEmpty(rule.From[0].NamespaceSelector):
			who = append(who, fromAnyPod)
		default:
			who = append(who, fromOther)
		}
	}
	switch {
	case len(who) == 0:
		return fromNobody
	case slices.Contains(who, fromAnywhere):
		return fromAnywhere
	case len(slices.Compact(slices.Sorted(slices.Values(who)))) == 1:
		return who[0]
	}
	return strings.Join(who, ", ")
}

// rulePort reports whether ports (of one rule) include port; no ports
// means every port.
func rulePort(ports []networkingv1.NetworkPolicyPort, port corev1.ContainerPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		cproto := port.Protocol
		if cproto == "" {
			cproto = corev1.ProtocolTCP
		}
		if proto != cproto || p.Port == nil {
			continue
		}
		if p.Port.StrVal == port.Name && port.Name != "" || p.Port.IntValue() == int(port.ContainerPort) {
			return true
		}
	}
	return false
}

func labelsEmpty(s *metav1.LabelSelector) bool {
	return len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// TestNetworkPolicy checks the rendered NetworkPolicy against the
// controller Deployment it guards: it selects the controller's pods,
// restricts ingress, and admits each container port to exactly whom
// docs/kubernetes.md says.
func TestNetworkPolicy(t *testing.T) {
	objs := render(t)
	np := rendered[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "ddi-controller")
	dep := rendered[appsv1.Deployment](t, objs, "Deployment", "ddi-controller")

	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	if labelsEmpty(&np.Spec.PodSelector) || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("podSelector %v does not select the controller's pods (labels %v), or selects every pod", np.Spec.PodSelector, dep.Spec.Template.Labels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("policyTypes = %v, want Ingress", np.Spec.PolicyTypes)
	}

	want := map[string]string{
		"webhook": fromAnywhere, // the API server: not selectable
		"stream":  fromAnyPod,   // sidecars, in every namespace
		"health":  fromAnywhere, // the kubelet's probes, from the node
		"metrics": fromAnyPod,   // a scraper pod
	}
	ports := dep.Spec.Template.Spec.Containers[0].Ports
	var names []string
	for _, p := range ports {
		names = append(names, p.Name)
	}
	if got := slices.Sorted(slices.Values(names)); !slices.Equal(got, []string{"health", "metrics", "stream", "webhook"}) {
		t.Errorf("the controller's container ports are %v; this test knows webhook, stream, health and metrics: say who may reach a new one", got)
	}
	for _, p := range ports {
		t.Run(p.Name, func(t *testing.T) {
			if got, w := admitted(np, p), want[p.Name]; got != w {
				t.Errorf("port %s (%d) is open to %s, want %s", p.Name, p.ContainerPort, got, w)
			}
		})
	}
	// Nothing else: every rule names ports of the controller.
	for i, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			t.Errorf("ingress rule %d names no ports: it opens every port", i)
		}
		for _, rp := range rule.Ports {
			known := slices.ContainsFunc(ports, func(p corev1.ContainerPort) bool { return rulePort([]networkingv1.NetworkPolicyPort{rp}, p) })
			if !known {
				t.Errorf("ingress rule %d names port %v, which the controller does not serve", i, rp.Port)
			}
		}
	}
}
