// Package bench holds ddi's benchmarks; the webhook_* files measure the
// Kubernetes side (bench/RESULTS.md): the admission handler, the fan-out
// of a provider change to many sidecar streams, and the control plane's
// memory.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/webhook"
)

type staticNamespaces map[string]string

func (s staticNamespaces) NamespaceLabels(context.Context, string) (map[string]string, error) {
	return s, nil
}

// knativePod is a Knative Serving revision pod as the API server sends it:
// user-container and queue-proxy, with ddi dependencies.
func knativePod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "orders-00001-deployment-5f7c9d-",
			Namespace:    "shop",
			Labels: map[string]string{
				"serving.knative.dev/service": "orders", "serving.knative.dev/revision": "orders-00001",
				"serving.knative.dev/configuration": "orders", "app": "orders-00001", "pod-template-hash": "5f7c9d",
			},
			Annotations: map[string]string{
				inject.AnnotationDependencies:                      "db=postgresql@^15;cache=redis@^7;payments=payments",
				"autoscaling.knative.dev/class":                    "kpa.autoscaling.knative.dev",
				"serving.knative.dev/creator":                      "admin",
				"traffic.sidecar.istio.io/includeOutboundIPRanges": "*",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "orders-00001-deployment-5f7c9d",
				UID: types.UID("7d3c1c55-0000-4000-8000-000000000001"), Controller: ptr(true)}},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "default",
			Containers: []corev1.Container{
				{Name: "user-container", Image: "example.com/orders@sha256:0123", Ports: []corev1.ContainerPort{{Name: "user-port", ContainerPort: 8080}},
					Env: []corev1.EnvVar{{Name: "PORT", Value: "8080"}, {Name: "K_SERVICE", Value: "orders"}}},
				{Name: "queue-proxy", Image: "example.com/queue@sha256:4567", Ports: []corev1.ContainerPort{{Name: "http-queueadm", ContainerPort: 8022},
					{Name: "http-autometric", ContainerPort: 9090}, {Name: "http-usermetric", ContainerPort: 9091}, {Name: "queue-port", ContainerPort: 8012}},
					Env: []corev1.EnvVar{{Name: "SERVING_NAMESPACE", Value: "shop"}, {Name: "QUEUE_SERVING_PORT", Value: "8012"}}},
			},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func admissionBody(b testing.TB) []byte {
	raw, err := json.Marshal(knativePod())
	if err != nil {
		b.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "b9a2b0c6-0000-4000-8000-000000000002",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "shop", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func newHandler(b testing.TB) *webhook.Handler {
	h, err := webhook.NewHandler(webhook.Options{
		Config:     inject.DefaultConfig(),
		Namespaces: staticNamespaces{inject.KeyInject: inject.NamespaceEnabled},
	})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkWebhookAdmission measures one admission of a Knative revision
// pod through the handler (decode, decide, inject, diff, encode), on all
// cores. It reports p50 and p99 latency per admission.
func BenchmarkWebhookAdmission(b *testing.B) {
	h := newHandler(b)
	body := admissionBody(b)
	// Check once that it injects.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body)))
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || !out.Response.Allowed || len(out.Response.Patch) == 0 {
		b.Fatalf("admission did not inject: %s", rec.Body.String())
	}
	lat := make(chan []time.Duration, 64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(rec, req)
			mine = append(mine, time.Since(start))
		}
		lat <- mine
	})
	b.StopTimer()
	close(lat)
	var all []time.Duration
	for l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "admissions/s")
	}
}

// BenchmarkWebhookAdmissionSerial is one admission at a time: the latency
// one API server call sees when the webhook is not saturated.
func BenchmarkWebhookAdmissionSerial(b *testing.B) {
	h := newHandler(b)
	body := admissionBody(b)
	all := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		all = append(all, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "admissions/s")
	}
}
