package webhook_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/kubetest"
)

// TestBlastRadius installs deploy/'s own webhook configuration, exactly as
// shipped, on a real API server with no ddi replica behind its Service,
// and creates pods: only pods that opted in may depend on ddi being up.
func TestBlastRadius(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{NoController: true})
	ctx := t.Context()

	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "webhook", "mutatingwebhookconfiguration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(raw, &mwc); err != nil {
		t.Fatalf("decode deploy/webhook/mutatingwebhookconfiguration.yaml: %v", err)
	}
	// Selectors, rules and policies as shipped; the address is a loopback
	// port where nothing listens: no ddi replica is ready.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String() + "/inject-pod"
	ln.Close()
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &dead}
	}
	if _, err := cp.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &mwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("install the webhook configuration: %v", err)
	}
	namespace(t, cp, "fn", map[string]string{inject.KeyInject: inject.NamespaceEnabled})
	namespace(t, cp, "plain", nil)
	namespace(t, cp, "off", map[string]string{inject.KeyInject: inject.NamespaceDisabled})

	on := map[string]string{inject.KeyInject: "true"}
	off := map[string]string{inject.KeyInject: "false"}
	tests := []struct {
		name        string
		pod         *corev1.Pod
		wantRefused string // the webhook the refusal names; "" means created
	}{
		{name: "plain pod, plain namespace", pod: newPod("plain", "a", nil, nil)},
		{name: "dependencies without opt-in", pod: newPod("plain", "b", nil, map[string]string{inject.AnnotationDependencies: "db=postgresql@^15"})},
		{name: "annotation opt-in is not an opt-in", pod: newPod("plain", "c", nil, on)},
		{name: "pod opted out in an enabled namespace", pod: newPod("fn", "d", off, nil)},
		{name: "disabled namespace, pod label true", pod: newPod("off", "e", on, nil)},
		{name: "kube-system, pod label true", pod: newPod("kube-system", "f", on, nil)},
		{name: "ddi-system, pod label true", pod: newPod(kubetest.SystemNamespace, "g", on, nil)},
		{name: "pod label opt-in", pod: newPod("plain", "h", on, nil), wantRefused: "pod.inject.ddi.dev"},
		{name: "enabled namespace", pod: newPod("fn", "i", nil, nil), wantRefused: "namespace.inject.ddi.dev"},
		{name: "enabled namespace and pod label", pod: newPod("fn", "j", on, nil), wantRefused: "namespace.inject.ddi.dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cp.Clientset.CoreV1().Pods(tt.pod.Namespace).Create(ctx, tt.pod, metav1.CreateOptions{})
			switch {
			case tt.wantRefused == "" && err != nil:
				t.Errorf("create pod %s/%s with no ddi replica ready = %v, want it created", tt.pod.Namespace, tt.pod.Name, err)
			case tt.wantRefused != "" && err == nil:
				t.Errorf("create opted-in pod %s/%s with no ddi replica ready succeeded, want it refused (failurePolicy Fail)", tt.pod.Namespace, tt.pod.Name)
			case tt.wantRefused != "" && !strings.Contains(err.Error(), `failed calling webhook "`+tt.wantRefused+`"`):
				t.Errorf("create opted-in pod %s/%s = %v, want a refusal naming webhook %s", tt.pod.Namespace, tt.pod.Name, err, tt.wantRefused)
			case tt.wantRefused != "":
				t.Logf("refused as it should be: %v", err)
			}
		})
	}
}
