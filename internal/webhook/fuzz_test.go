package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/webhook"
)

// FuzzAdmissionReview sends pods built from fuzzed JSON, with fuzzed
// ddi annotations and labels, through the webhook's real handler, as the
// API server would. The answer is always an AdmissionReview; a patch
// applies cleanly to the object sent, yields the pod inject.Pod builds,
// and injecting the result again changes nothing.

const fuzzUID = "0d9c2f9e-0000-4000-8000-00000000f022"

// Bits of FuzzAdmissionReview's present argument: which annotations and
// labels the pod carries.
const (
	hasDependencies = 1 << iota
	hasInjectLabel
	hasInjectAnnotation
	hasAppContainers
	hasMode
	hasPort
	hasImage
	hasExtra
	rawObject // send the fuzzed JSON itself instead of a typed Pod
)

type fuzzNamespaces struct{}

func (fuzzNamespaces) NamespaceLabels(context.Context, string) (map[string]string, error) {
	return map[string]string{inject.KeyInject: inject.NamespaceEnabled}, nil
}

// sendReview posts a review of creating raw in its namespace (default
// "fn"), as the API server sends it.
func sendReview(t *testing.T, h http.Handler, raw []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	var meta struct {
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	ns := "fn"
	if json.Unmarshal(raw, &meta) == nil && meta.Metadata.Namespace != "" {
		ns = meta.Metadata.Namespace
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: fuzzUID, Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Skip("not a JSON value") // RawExtension must hold JSON
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.Response == nil {
		t.Fatalf("review = %d %s, want 200 and an AdmissionReview response", rec.Code, rec.Body.String())
	}
	if out.Response.UID != fuzzUID || out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
		t.Fatalf("response %s/%s uid %q, want an admission.k8s.io/v1 AdmissionReview for uid %q", out.APIVersion, out.Kind, out.Response.UID, fuzzUID)
	}
	if !out.Response.Allowed && len(out.Response.Patch) > 0 {
		t.Fatalf("a denied review carries a patch: %s", out.Response.Patch)
	}
	if !out.Response.Allowed && (out.Response.Result == nil || out.Response.Result.Message == "") {
		t.Fatalf("a denied review says nothing: %+v", out.Response.Result)
	}
	return out.Response
}

// applyPatch applies the response's patch to raw.
func applyPatch(t *testing.T, raw []byte, resp *admissionv1.AdmissionResponse) []byte {
	t.Helper()
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v, want JSONPatch", resp.PatchType)
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("the patch does not decode: %v\n%s", err, resp.Patch)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("the patch does not apply to the object sent: %v\npatch %s\nobject %s", err, resp.Patch, raw)
	}
	return patched
}

func hasSidecar(pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == inject.SidecarName {
				return true
			}
		}
	}
	return false
}

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(t *testing.T, a, b []byte) string {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return cmp.Diff(x, y)
}

func FuzzAdmissionReview(f *testing.F) {
	var handlers [2]http.Handler // by native sidecars
	for i, native := range []bool{false, true} {
		h, err := webhook.NewHandler(webhook.Options{Config: inject.DefaultConfig(), Namespaces: fuzzNamespaces{},
			Native: func(context.Context) bool { return native }})
		if err != nil {
			f.Fatal(err)
		}
		handlers[i] = h
	}

	plain := `{"metadata":{"name":"fn-1","namespace":"fn"},"spec":{"containers":[{"name":"fn","image":"example.com/fn:1","ports":[{"containerPort":8080}]}]}}`
	add := func(pod []byte, deps, injectVal, apps, mode, port, image string, present uint16, native bool) {
		f.Add(pod, deps, injectVal, apps, mode, port, image, "example.com/x", "y", present, native)
	}
	add([]byte(plain), "db=postgresql@^15;greeter=greeter", "true", "fn", "native", "7471", "ghcr.io/ddi/sidecar:1", 0, true)
	add([]byte(plain), "db=postgresql@^15;greeter=greeter", "true", "fn", "native", "7471", "ghcr.io/ddi/sidecar:1", hasDependencies|hasInjectAnnotation, false)
	add([]byte(plain), "db=postgresql@^^15", "TRUE ", "fn,missing", "sideways", "8080", "not an image!", 0xff, true)
	add([]byte(plain), "", "false", "", "container", "99999", "", hasInjectLabel|hasMode|hasPort, true)
	add([]byte(plain), "", "maybe", "ddi-sidecar", "native", "-1", "", hasInjectLabel|hasAppContainers|hasMode, false)
	add([]byte(`{"spec":{"hostNetwork":true,"containers":[{"name":"fn"}]}}`), "", "true", "", "", "", "", hasInjectLabel, true)
	add([]byte(`{"spec":{"restartPolicy":"Never","initContainers":[{"name":"setup"}],"containers":[{"name":"fn"}]}}`), "", "", "setup,fn", "container", "", "", hasAppContainers|hasMode, true)
	add([]byte(`{"spec":{"containers":[{"name":"istio-proxy"},{"name":"fn"}],"initContainers":[{"name":"istio-init"}]}}`), "", "", "", "native", "", "", hasMode, true)
	add([]byte(`{"metadata":{"annotations":{"ddi.dev/injected-version":"v1"}},"spec":{"containers":[{"name":"fn"}]}}`), "", "", "", "", "", "", 0, true)
	add([]byte(`{"metadata":{"annotations":{"traffic.sidecar.istio.io/excludeOutboundPorts":"15000, 7470,"}},"spec":{"containers":[{"name":"fn","ports":[{"containerPort":7471,"protocol":"UDP"}]}]}}`), "", "", "", "", "", "", 0, true)
	add([]byte(`{"metadata":{"namespace":"kube-system"},"spec":{"containers":[]}}`), "", "", "", "", "", "", 0, true)
	add([]byte(`{"metadata":{"labels":{"a/b~c":"d"}},"spec":{"containers":[{"name":"fn","unknownField":1}]},"status":{"phase":"Pending"}}`), "", "", "", "", "", "", rawObject, true)
	add([]byte(`[]`), "", "", "", "", "", "", rawObject, true)
	add([]byte(`not json`), "", "", "", "", "", "", 0, true)
	// The injector's golden pods.
	for _, name := range []string{"plain-container-pod", "openfaas-pod", "knative-revision-pod", "fission-poolmgr-pod", "istio-native-pod", "already-injected", "opt-out"} {
		y, err := os.ReadFile(filepath.Join("..", "inject", "testdata", name+".yaml"))
		if err != nil {
			continue // seeds only
		}
		if j, err := yaml.YAMLToJSON(y); err == nil {
			add(j, "", "", "", "", "", "", 0, true)
			add(j, "", "", "", "", "", "", rawObject, false)
		}
	}

	f.Fuzz(func(t *testing.T, podJSON []byte, deps, injectVal, apps, mode, port, image, extraKey, extraVal string, present uint16, native bool) {
		h := handlers[0]
		if native {
			h = handlers[1]
		}
		cfg := inject.DefaultConfig()
		cfg.NativeSidecars = native

		if present&rawObject != 0 {
			// The object as an API server sends it: canonical JSON, fields
			// this webhook may not know included.
			var v any
			if json.Unmarshal(podJSON, &v) != nil {
				return
			}
			raw, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			resp := sendReview(t, h, raw)
			if !resp.Allowed || len(resp.Patch) == 0 {
				return
			}
			patched := applyPatch(t, raw, resp)
			var pod corev1.Pod
			if err := json.Unmarshal(patched, &pod); err != nil || !hasSidecar(&pod) {
				t.Fatalf("the patched object is no pod with the sidecar: %v\n%s", err, patched)
			}
			if again := sendReview(t, h, patched); !again.Allowed || len(again.Patch) > 0 {
				t.Fatalf("a second review of the injected pod = allowed %t, patch %s; want allowed, no patch", again.Allowed, again.Patch)
			}
			return
		}

		var pod corev1.Pod
		if err := json.Unmarshal(podJSON, &pod); err != nil {
			// Not a pod: the answer is still an AdmissionReview.
			sendReview(t, h, podJSON)
			return
		}
		set := func(m *map[string]string, bit uint16, key, value string) {
			if present&bit == 0 {
				return
			}
			if *m == nil {
				*m = map[string]string{}
			}
			(*m)[key] = value
		}
		set(&pod.Annotations, hasDependencies, inject.AnnotationDependencies, deps)
		set(&pod.Labels, hasInjectLabel, inject.KeyInject, injectVal)
		set(&pod.Annotations, hasInjectAnnotation, inject.KeyInject, injectVal)
		set(&pod.Annotations, hasAppContainers, inject.AnnotationAppContainers, apps)
		set(&pod.Annotations, hasMode, inject.AnnotationSidecarMode, mode)
		set(&pod.Annotations, hasPort, inject.AnnotationSidecarPort, port)
		set(&pod.Annotations, hasImage, inject.AnnotationSidecarImage, image)
		set(&pod.Annotations, hasExtra, extraKey, extraVal)
		raw, err := json.Marshal(&pod)
		if err != nil {
			t.Fatalf("Marshal of a decoded pod: %v", err)
		}
		resp := sendReview(t, h, raw)

		// The webhook decides as the injector does.
		decided, _ := inject.Decide(map[string]string{inject.KeyInject: inject.NamespaceEnabled}, &pod)
		mutated := pod.DeepCopy()
		var injectErr error
		if decided {
			changed, err := inject.Pod(mutated, cfg)
			injectErr = err
			if err == nil && !changed {
				t.Fatalf("inject.Pod of a pod Decide accepts changed nothing")
			}
		}
		switch {
		case !decided && len(resp.Patch) > 0:
			t.Fatalf("the webhook patched a pod inject.Decide skips: %s", resp.Patch)
		case decided && injectErr != nil && resp.Allowed:
			t.Fatalf("inject.Pod fails (%v) but the webhook allowed the pod", injectErr)
		case decided && injectErr == nil && (!resp.Allowed || len(resp.Patch) == 0):
			t.Fatalf("inject.Pod injects but the webhook answered allowed %t, patch %q (%v)", resp.Allowed, resp.Patch, resp.Result)
		}
		if len(resp.Patch) == 0 {
			return
		}

		patched := applyPatch(t, raw, resp)
		want, err := json.Marshal(mutated)
		if err != nil {
			t.Fatal(err)
		}
		if diff := jsonEqual(t, want, patched); diff != "" {
			t.Fatalf("the patched pod differs from inject.Pod's (-inject.Pod +patched):\n%s", diff)
		}
		var got corev1.Pod
		if err := json.Unmarshal(patched, &got); err != nil || !hasSidecar(&got) {
			t.Fatalf("the patched object is no pod with the sidecar: %v", err)
		}
		// Injecting again changes nothing, through either path.
		again := got.DeepCopy()
		if changed, err := inject.Pod(again, cfg); changed || err != nil {
			t.Fatalf("inject.Pod of the injected pod = %t, %v; want false, nil", changed, err)
		}
		after, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if diff := jsonEqual(t, patched, after); diff != "" {
			t.Fatalf("inject.Pod changed the injected pod (-before +after):\n%s", diff)
		}
		if second := sendReview(t, h, patched); !second.Allowed || len(second.Patch) > 0 {
			t.Fatalf("a second review of the injected pod = allowed %t, patch %s; want allowed, no patch", second.Allowed, second.Patch)
		}
	})
}
