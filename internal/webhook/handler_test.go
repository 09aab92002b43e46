package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

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
