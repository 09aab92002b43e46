//go:build !nokube

package cli

import (
	"crypto/tls"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ddi.dev/ddi/internal/kubetest"
)

// TestControllerPodAndCA: on a real API server with the controller
// running, the CLI's way in finds a ready controller pod in ddi-system (not
// an unready one, not one of another component) and reads the CA from the
// webhook configuration's caBundle, and that CA verifies the control
// plane's certificate under the name the CLI checks through a
// port-forward. The port-forward itself needs a kubelet, which the test
// API server lacks.
func TestControllerPodAndCA(t *testing.T) {
	// Self-managed certificates: the controller's own CA, which it keeps
	// in the webhook configuration's caBundle, as in a real installation.
	cp := kubetest.RunControlPlane(t, kubetest.Options{SelfManagedCerts: true})
	ctx := t.Context()
	cs := cp.Clientset

	if _, err := controllerPod(ctx, cs); err == nil || !strings.Contains(err.Error(), "no ready ddi controller pod") {
		t.Errorf("controllerPod with none = %v, want no ready ddi controller pod", err)
	}
	mk := func(name string, labels map[string]string, ready bool) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: controllerNamespace, Name: name, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/ddi:1"}}}}
		p, err := cs.CoreV1().Pods(controllerNamespace).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
		if _, err := cs.CoreV1().Pods(controllerNamespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	controller := map[string]string{"app.kubernetes.io/name": "ddi", "app.kubernetes.io/component": "controller"}
	mk("ddi-controller-unready", controller, false)
	mk("something-else", map[string]string{"app.kubernetes.io/name": "ddi", "app.kubernetes.io/component": "other"}, true)
	if _, err := controllerPod(ctx, cs); err == nil {
		t.Errorf("controllerPod found a pod, want none ready")
	}
	mk("ddi-controller-ready", controller, true)
	if got, err := controllerPod(ctx, cs); err != nil || got != "ddi-controller-ready" {
		t.Errorf("controllerPod = %q, %v, want ddi-controller-ready", got, err)
	}

	roots, err := webhookCA(ctx, cs)
	if err != nil {
		t.Fatalf("webhookCA: %v", err)
	}
	// The control plane's certificate verifies with that CA under the
	// Service name, as through a port-forward to 127.0.0.1.
	u, err := url.Parse(cp.StreamURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", u.Host,
		&tls.Config{RootCAs: roots, ServerName: controllerServerName, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to the control plane as %s with the webhook's CA: %v", controllerServerName, err)
	}
	conn.Close()
}
