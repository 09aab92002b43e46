package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/kubetest"
)

func namespace(t *testing.T, cp *kubetest.ControlPlane, name string, labels map[string]string) {
	t.Helper()
	cp.Namespace(t, name, labels)
}

func newPod(ns, name string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "fn", Image: "example.com/fn:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	}
}

// sidecarOf returns the injected sidecar and whether it is native.
func sidecarOf(pod *corev1.Pod) (c *corev1.Container, native bool) {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == inject.SidecarName {
			return &pod.Spec.InitContainers[i], true
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == inject.SidecarName {
			return &pod.Spec.Containers[i], false
		}
	}
	return nil, false
}

func TestWebhookThroughAPIServer(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{})
	ctx := t.Context()
	namespace(t, cp, "fn", map[string]string{inject.KeyInject: inject.NamespaceEnabled})
	namespace(t, cp, "plain", nil)
	namespace(t, cp, "off", map[string]string{inject.KeyInject: inject.NamespaceDisabled})

	t.Run("injected", func(t *testing.T) {
		got, err := cp.Clientset.CoreV1().Pods("fn").Create(ctx, newPod("fn", "a", nil, map[string]string{
			inject.AnnotationDependencies: "db=postgresql@^15",
		}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod: %v", err)
		}
		c, native := sidecarOf(got)
		if c == nil {
			t.Fatalf("pod came back without %s: init %v, containers %v", inject.SidecarName, names(got.Spec.InitContainers), names(got.Spec.Containers))
		}
		// A pod that runs until deleted: the ordered sidecar, first, with
		// its postStart hook.
		if native || c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
			t.Errorf("sidecar native = %v, lifecycle %v; want a plain container with a postStart hook", native, c.Lifecycle)
		}
		if got.Annotations[inject.AnnotationInjectedVersion] == "" {
			t.Errorf("annotation %s missing", inject.AnnotationInjectedVersion)
		}
		if want := []string{inject.SidecarName, "fn"}; !slices.Equal(names(got.Spec.Containers), want) {
			t.Errorf("containers = %v, want %v", names(got.Spec.Containers), want)
		}
	})

	t.Run("pod that runs to completion", func(t *testing.T) {
		pod := newPod("fn", "job", nil, nil)
		pod.Spec.RestartPolicy = corev1.RestartPolicyNever
		got, err := cp.Clientset.CoreV1().Pods("fn").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod: %v", err)
		}
		c, native := sidecarOf(got)
		// The API server is 1.37: native sidecars, found through discovery.
		if c == nil || !native || c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("sidecar %v native = %v; want an init container with restartPolicy Always", c != nil, native)
		}
		if len(got.Spec.Containers) != 1 || got.Spec.Containers[0].Name != "fn" {
			t.Errorf("containers = %v, want just fn", names(got.Spec.Containers))
		}
	})

	t.Run("pod opt-in in a plain namespace", func(t *testing.T) {
		got, err := cp.Clientset.CoreV1().Pods("plain").Create(ctx, newPod("plain", "b", map[string]string{inject.KeyInject: "true"}, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod: %v", err)
		}
		if c, _ := sidecarOf(got); c == nil {
			t.Error("a pod labelled ddi.dev/inject=true was not injected")
		}
	})

	notInjected := []struct {
		name string
		pod  *corev1.Pod
	}{
		{"plain namespace, no opt-in", newPod("plain", "c", nil, nil)},
		{"pod label opt-out (objectSelector)", newPod("fn", "d", map[string]string{inject.KeyInject: "false"}, nil)},
		{"pod annotation opt-out", newPod("fn", "e", nil, map[string]string{inject.KeyInject: "false"})},
		{"namespace disabled (namespaceSelector)", newPod("off", "f", map[string]string{inject.KeyInject: "true"}, nil)},
		{"kube-system excluded", newPod("kube-system", "g", map[string]string{inject.KeyInject: "true"}, nil)},
		{"ddi-system excluded", newPod(kubetest.SystemNamespace, "h", map[string]string{inject.KeyInject: "true"}, nil)},
	}
	for _, tc := range notInjected {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cp.Clientset.CoreV1().Pods(tc.pod.Namespace).Create(ctx, tc.pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create pod: %v", err)
			}
			if c, _ := sidecarOf(got); c != nil || len(got.Annotations[inject.AnnotationInjectedVersion]) > 0 {
				t.Errorf("pod %s/%s was injected; want it untouched", got.Namespace, got.Name)
			}
		})
	}

	t.Run("dry run is injected and records nothing", func(t *testing.T) {
		pod := newPod("fn", "dry", nil, nil)
		got, err := cp.Clientset.CoreV1().Pods("fn").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("dry-run create: %v", err)
		}
		if c, _ := sidecarOf(got); c == nil {
			t.Error("dry-run pod not injected")
		}
		if _, err := cp.Clientset.CoreV1().Pods("fn").Get(ctx, "dry", metav1.GetOptions{}); err == nil {
			t.Error("dry-run pod exists")
		}
	})

	t.Run("skip recorded as an Event on the pod's controller, not for dry runs", func(t *testing.T) {
		// Opted out by annotation: the webhook sees it and says why, on
		// the ReplicaSet that creates the pods.
		rs := replicaSet(t, cp, "fn", "skipping")
		for _, dry := range []bool{true, false} {
			opts := metav1.CreateOptions{}
			if dry {
				opts.DryRun = []string{metav1.DryRunAll}
			}
			p := newPod("fn", "", nil, map[string]string{inject.KeyInject: "false"})
			p.GenerateName = "skipping-"
			p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}
			if _, err := cp.Clientset.CoreV1().Pods("fn").Create(ctx, p, opts); err != nil {
				t.Fatalf("create pod: %v", err)
			}
			if dry {
				time.Sleep(time.Second) // the recorder is asynchronous; give a wrong Event time to appear
				var list eventsv1.EventList
				if err := cp.Client.List(ctx, &list, client.InNamespace("fn")); err != nil {
					t.Fatal(err)
				}
				for _, e := range list.Items {
					if e.Regarding.Name == rs.Name {
						t.Errorf("a dry-run request recorded Event %s %q", e.Reason, e.Note)
					}
				}
			}
		}
		ev := waitEvent(t, cp, "fn", rs.Name)
		if ev.Reason != "InjectionSkipped" || !strings.Contains(ev.Note, "opted out") || ev.Regarding.UID != rs.UID {
			t.Errorf("event = %s %q regarding UID %s, want InjectionSkipped saying opted out, regarding the ReplicaSet %s", ev.Reason, ev.Note, ev.Regarding.UID, rs.UID)
		}
	})

	t.Run("skip of a pod without a controller is a warning to its creator", func(t *testing.T) {
		var warnings warningRecorder
		cfg := rest.CopyConfig(cp.Config)
		cfg.WarningHandler = &warnings
		cs := kubernetes.NewForConfigOrDie(cfg)
		if _, err := cs.CoreV1().Pods("fn").Create(ctx, newPod("fn", "skipped", nil, map[string]string{inject.KeyInject: "false"}), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
		if got := warnings.all(); len(got) != 1 || !strings.Contains(got[0], "ddi sidecar not injected: opted out") {
			t.Errorf("warnings = %q, want one saying the sidecar was not injected because the pod opted out", got)
		}
	})

	t.Run("forged reviews record no Event", func(t *testing.T) {
		// Anyone who reaches the webhook's port can POST an
		// AdmissionReview; the API server is not the only caller. A
		// review naming objects the API server does not know must not
		// make the controller write Events about them.
		replicaSet(t, cp, "fn", "real-rs")
		optOut := map[string]string{inject.KeyInject: "false"}
		owned := func(ns, name string, owner metav1.OwnerReference) *corev1.Pod {
			p := newPod(ns, "", nil, optOut)
			p.GenerateName = name + "-"
			p.OwnerReferences = []metav1.OwnerReference{owner}
			return p
		}
		rsRef := func(name string, uid types.UID) metav1.OwnerReference {
			return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name, UID: uid, Controller: ptr.To(true)}
		}
		forged := []struct {
			name      string
			namespace string // request.namespace
			pod       *corev1.Pod
			regarding string
		}{
			{name: "named pod in kube-system", namespace: "kube-system", pod: newPod("kube-system", "forged-bare", nil, optOut), regarding: "forged-bare"},
			{name: "named pod in an opted-in namespace", namespace: "fn", pod: newPod("fn", "forged-named", nil, optOut), regarding: "forged-named"},
			{name: "owner that does not exist", namespace: "fn", pod: owned("fn", "made-up-rs", rsRef("made-up-rs", "6a0e2c1d-0000-4000-8000-00000000dead")), regarding: "made-up-rs"},
			{name: "real owner, wrong UID", namespace: "fn", pod: owned("fn", "real-rs", rsRef("real-rs", "6a0e2c1d-0000-4000-8000-00000000beef")), regarding: "real-rs"},
			{name: "owner in kube-system", namespace: "kube-system", pod: owned("kube-system", "kube-proxy", rsRef("kube-proxy", "6a0e2c1d-0000-4000-8000-0000000000aa")), regarding: "kube-proxy"},
		}
		hc := webhookClient(cp)
		for _, f := range forged {
			t.Run(f.name, func(t *testing.T) {
				status, body := postReview(t, hc, cp.WebhookURL, f.namespace, f.pod)
				if status != http.StatusOK {
					t.Fatalf("POST forged review = %d %s, want 200", status, body)
				}
			})
		}
		time.Sleep(2 * time.Second) // the recorder is asynchronous; give a wrong Event time to appear
		for _, ns := range []string{"fn", "kube-system"} {
			var list eventsv1.EventList
			if err := cp.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}
			for _, e := range list.Items {
				for _, f := range forged {
					if e.Regarding.Name == f.regarding {
						t.Errorf("forged review %q recorded Event %s/%s %s regarding %s %s: %q", f.name, e.Namespace, e.Name, e.Reason, e.Regarding.Kind, e.Regarding.Name, e.Note)
					}
				}
			}
		}
	})

	t.Run("malformed AdmissionReview gets 400", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cp.Env.WebhookInstallOptions.LocalServingCAData)
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		for _, tc := range []struct {
			name, body, want string
		}{
			{"not JSON", "{nope", "not a JSON AdmissionReview"},
			{"wrong kind", `{"apiVersion":"v1","kind":"Pod"}`, "want apiVersion admission.k8s.io/v1, kind AdmissionReview"},
			{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "has no request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := hc.Post(cp.WebhookURL, "application/json", strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(b, []byte(tc.want)) {
					t.Errorf("POST %s = %d %s, want 400 saying %q", tc.body, resp.StatusCode, b, tc.want)
				}
			})
		}
	})
}

func waitEvent(t *testing.T, cp *kubetest.ControlPlane, ns, regarding string) eventsv1.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var list eventsv1.EventList
		if err := cp.Client.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Regarding.Name == regarding {
				return e
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no Event regarding %s/%s within 20s", ns, regarding)
	return eventsv1.Event{}
}

// replicaSet creates a ReplicaSet (no controller manager runs: it stays
// without pods) to own test pods.
func replicaSet(t *testing.T, cp *kubetest.ControlPlane, ns, name string) *appsv1.ReplicaSet {
	t.Helper()
	labels := map[string]string{"app": name}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "fn", Image: "example.com/fn:1"}}},
			},
		},
	}
	if err := cp.Client.Create(t.Context(), rs); err != nil {
		t.Fatalf("create ReplicaSet %s/%s: %v", ns, name, err)
	}
	return rs
}

// warningRecorder keeps the warnings the API server sends a client.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningRecorder) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// webhookClient returns an HTTP client that trusts the webhook's serving
// certificate, as the API server does.
func webhookClient(cp *kubetest.ControlPlane) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cp.Env.WebhookInstallOptions.LocalServingCAData)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// postReview POSTs an AdmissionReview for the creation of pod in namespace
// straight to the webhook, as any caller that reaches its port can.
func postReview(t *testing.T, hc *http.Client, url, namespace string, pod *corev1.Pod) (int, []byte) {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID(fmt.Sprintf("forged-%d", time.Now().UnixNano())),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: namespace, Name: pod.Name, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func names(cs []corev1.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// TestSelfManagedCertificate runs the webhook as in a real installation:
// the controller generates its CA and serving certificate into a Secret and
// writes the CA into the webhook configuration's caBundle; the API server
// then calls it over TLS.
func TestSelfManagedCertificate(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{SelfManagedCerts: true})
	ctx := t.Context()
	// RunControlPlane already proved the API server reaches the webhook;
	// check that it is our CA it trusts.
	var sec corev1.Secret
	if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: kubetest.SystemNamespace, Name: controller.DefaultCertSecretName}, &sec); err != nil {
		t.Fatalf("certificate secret: %v", err)
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := cp.Client.Get(ctx, client.ObjectKey{Name: controller.DefaultWebhookConfigName}, &mwc); err != nil {
		t.Fatal(err)
	}
	if got := mwc.Webhooks[0].ClientConfig.CABundle; !bytes.Equal(got, sec.Data["ca.crt"]) {
		t.Errorf("caBundle is not the CA in the Secret (%d vs %d bytes)", len(got), len(sec.Data["ca.crt"]))
	}

	// Someone resets the caBundle (a kubectl apply of deploy/): the
	// reconciler puts it back.
	patch := []byte(`[{"op":"replace","path":"/webhooks/0/clientConfig/caBundle","value":"` + "" + `"}]`)
	if err := cp.Client.Patch(ctx, &mwc, client.RawPatch("application/json-patch+json", patch)); err != nil {
		t.Fatalf("reset caBundle: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := cp.Client.Get(ctx, client.ObjectKey{Name: controller.DefaultWebhookConfigName}, &mwc); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(mwc.Webhooks[0].ClientConfig.CABundle, sec.Data["ca.crt"]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("caBundle was not restored within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	namespace(t, cp, "fn", map[string]string{inject.KeyInject: inject.NamespaceEnabled})
	got, err := cp.Clientset.CoreV1().Pods("fn").Create(ctx, newPod("fn", "a", nil, nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	if c, _ := sidecarOf(got); c == nil {
		t.Error("pod not injected through the self-managed certificate")
	}
	_ = json.Valid
	_ = context.Background
}
