package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/webhook"
)

type staticLabels map[string]string

func (l staticLabels) NamespaceLabels(context.Context, string) (map[string]string, error) {
	return l, nil
}

// admit sends pod through h and returns the pod the API server would store.
func admit(t *testing.T, h http.Handler, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "0d9c2f9e-0000-4000-8000-000000000001",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: pod.Namespace, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || !out.Response.Allowed {
		t.Fatalf("admission = %d %s, want an allowed AdmissionReview", rec.Code, rec.Body.String())
	}
	patch, err := jsonpatch.DecodePatch(out.Response.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func envValue(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// TestHandlerInjectsTheCurrentCA checks that every admission asks for the
// CA afresh: a pod admitted after a rotation trusts the new CA.
func TestHandlerInjectsTheCurrentCA(t *testing.T) {
	bundles := make([][]byte, 2)
	for i := range bundles {
		c, err := webhook.NewCerts(webhook.CertOptions{DNSNames: webhook.ServiceDNSNames("ddi-controller", "ddi-system")})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Ensure(t.Context()); err != nil {
			t.Fatal(err)
		}
		bundles[i] = c.CABundle()
	}
	var (
		mu      sync.Mutex
		current []byte
	)
	h, err := webhook.NewHandler(webhook.Options{
		Config:     inject.DefaultConfig(),
		Namespaces: staticLabels{inject.KeyInject: inject.NamespaceEnabled},
		ControlPlaneCA: func() []byte {
			mu.Lock()
			defer mu.Unlock()
			return current
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ca   []byte
	}{
		{name: "first CA", ca: bundles[0]},
		{name: "rotated CA", ca: bundles[1]},
		{name: "no CA", ca: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			current = tt.ca
			mu.Unlock()
			pod := admit(t, h, newPod("fn", "a", nil, nil))
			c, _ := sidecarOf(pod)
			if c == nil {
				t.Fatal("the pod came back without the sidecar")
			}
			got, ok := envValue(c, inject.EnvControlPlaneCA)
			switch {
			case tt.ca == nil && ok:
				t.Errorf("%s = %q, want it unset when there is no CA", inject.EnvControlPlaneCA, got)
			case tt.ca != nil && got != string(tt.ca):
				t.Errorf("%s = %q, want the current CA bundle %q", inject.EnvControlPlaneCA, got, tt.ca)
			}
			if url, _ := envValue(c, inject.EnvControlPlane); url != inject.DefaultControlPlaneURL {
				t.Errorf("%s = %q, want %q", inject.EnvControlPlane, url, inject.DefaultControlPlaneURL)
			}
		})
	}
}

// recorder keeps the Events a handler records.
type recorder struct {
	mu     sync.Mutex
	events []string // "kind/name uid reason"
}

func (r *recorder) Eventf(regarding, _ runtime.Object, _, reason, _, _ string, _ ...any) {
	m := regarding.(*metav1.PartialObjectMetadata)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s/%s %s %s", m.Kind, m.Name, m.UID, reason))
}

// objects is an ObjectChecker over a fixed set of "namespace/kind/name" to
// UID.
type objects struct {
	uids  map[string]types.UID
	err   error
	calls int
}

func (o *objects) Exists(_ context.Context, namespace string, ref metav1.OwnerReference) (bool, error) {
	o.calls++
	if o.err != nil {
		return false, o.err
	}
	uid, ok := o.uids[namespace+"/"+ref.Kind+"/"+ref.Name]
	return ok && uid == ref.UID, nil
}

// review POSTs an AdmissionReview for creating pod in namespace to h.
func review(t *testing.T, h http.Handler, namespace string, pod *corev1.Pod, dryRun bool) (int, *admissionv1.AdmissionResponse) {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "0d9c2f9e-0000-4000-8000-000000000002",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: namespace, Operation: admissionv1.Create, DryRun: &dryRun,
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("admission = %d %s, want an AdmissionReview", rec.Code, rec.Body.String())
	}
	return rec.Code, out.Response
}

// TestHandlerEventsOnlyAboutConfirmedControllers checks that no Event
// comes from a review alone: a skipped pod's Event regards its
// controller, recorded only when the API server confirms the controller
// with the UID the pod names; a pod without one gets a warning in the
// response instead.
func TestHandlerEventsOnlyAboutConfirmedControllers(t *testing.T) {
	const rsUID types.UID = "5b0c7a1e-0000-4000-8000-000000000001"
	optOut := map[string]string{inject.KeyInject: "false"}
	ownedBy := func(name string, uid types.UID) *corev1.Pod {
		p := newPod("fn", "", nil, optOut)
		p.GenerateName = name + "-"
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name, UID: uid, Controller: ptr.To(true)}}
		return p
	}
	badValue := ownedBy("web-7d9f", rsUID)
	badValue.Annotations = map[string]string{inject.AnnotationSidecarImage: "not an image!"}
	badValue.Labels = map[string]string{inject.KeyInject: "true"}
	tests := []struct {
		name        string
		namespace   string
		pod         *corev1.Pod
		dryRun      bool
		noChecker   bool
		checkErr    error
		wantStatus  int
		wantAllowed bool
		wantWarning string
		wantEvents  []string
	}{
		{name: "controller confirmed", namespace: "fn", pod: ownedBy("web-7d9f", rsUID), wantStatus: http.StatusOK, wantAllowed: true,
			wantWarning: "not injected", wantEvents: []string{"ReplicaSet/web-7d9f " + string(rsUID) + " InjectionSkipped"}},
		{name: "injection failed, controller confirmed", namespace: "fn", pod: badValue, wantStatus: http.StatusOK,
			wantEvents: []string{"ReplicaSet/web-7d9f " + string(rsUID) + " InjectionFailed"}},
		{name: "controller with another UID", namespace: "fn", pod: ownedBy("web-7d9f", "5b0c7a1e-0000-4000-8000-00000000beef"), wantStatus: http.StatusOK, wantAllowed: true, wantWarning: "not injected"},
		{name: "controller that does not exist", namespace: "fn", pod: ownedBy("made-up", rsUID), wantStatus: http.StatusOK, wantAllowed: true, wantWarning: "not injected"},
		{name: "controller in another namespace", namespace: "kube-system", pod: func() *corev1.Pod { p := ownedBy("web-7d9f", rsUID); p.Namespace = "kube-system"; return p }(),
			wantStatus: http.StatusOK, wantAllowed: true, wantWarning: "not injected"},
		{name: "check fails", namespace: "fn", pod: ownedBy("web-7d9f", rsUID), checkErr: errors.New("forbidden"), wantStatus: http.StatusOK, wantAllowed: true, wantWarning: "not injected"},
		{name: "no checker", namespace: "fn", pod: ownedBy("web-7d9f", rsUID), noChecker: true, wantStatus: http.StatusOK, wantAllowed: true, wantWarning: "not injected"},
		{name: "dry run", namespace: "fn", pod: ownedBy("web-7d9f", rsUID), dryRun: true, wantStatus: http.StatusOK, wantAllowed: true, wantWarning: "not injected"},
		{name: "bare named pod", namespace: "fn", pod: newPod("fn", "bare", nil, optOut), wantStatus: http.StatusOK, wantAllowed: true, wantWarning: "opted out"},
		{name: "request and pod disagree on the namespace", namespace: "kube-system", pod: ownedBy("web-7d9f", rsUID), wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			objs := &objects{uids: map[string]types.UID{"fn/ReplicaSet/web-7d9f": rsUID}, err: tt.checkErr}
			opts := webhook.Options{Config: inject.DefaultConfig(), Namespaces: staticLabels{inject.KeyInject: inject.NamespaceEnabled}, Events: rec, Objects: objs}
			if tt.noChecker {
				opts.Objects = nil
			}
			h, err := webhook.NewHandler(opts)
			if err != nil {
				t.Fatal(err)
			}
			status, resp := review(t, h, tt.namespace, tt.pod, tt.dryRun)
			if status != tt.wantStatus || resp.Allowed != tt.wantAllowed {
				t.Errorf("review = %d allowed %t (%v), want %d allowed %t", status, resp.Allowed, resp.Result, tt.wantStatus, tt.wantAllowed)
			}
			if tt.wantWarning != "" && (len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tt.wantWarning)) {
				t.Errorf("warnings = %q, want one saying %q", resp.Warnings, tt.wantWarning)
			}
			if diff := cmp.Diff(tt.wantEvents, rec.events); diff != "" {
				t.Errorf("Events mismatch (-want +got):\n%s", diff)
			}
			if tt.dryRun && objs.calls > 0 {
				t.Errorf("a dry run checked %d objects, want none", objs.calls)
			}
		})
	}
}

// TestHandlerBoundsChecks checks that a flood of reviews, forged or not,
// does not become a flood of reads of the API server.
func TestHandlerBoundsChecks(t *testing.T) {
	objs := &objects{}
	h, err := webhook.NewHandler(webhook.Options{Config: inject.DefaultConfig(), Namespaces: staticLabels{inject.KeyInject: inject.NamespaceEnabled},
		Events: &recorder{}, Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	pod := newPod("fn", "", nil, map[string]string{inject.KeyInject: "false"})
	pod.GenerateName = "web-"
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "5b0c7a1e-0000-4000-8000-000000000001", Controller: ptr.To(true)}}
	const reviews = 500
	for range reviews {
		review(t, h, "fn", pod, false)
	}
	if objs.calls > 60 {
		t.Errorf("%d reviews in a burst made %d checks, want at most 60 (a burst of 50, then 10/s)", reviews, objs.calls)
	}
}
