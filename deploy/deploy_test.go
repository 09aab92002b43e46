// Package deploy holds the kustomize base; this test renders it with
// kubectl and creates every object on a real API server.
package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/internal/kubetest"
)

func kubectl(t *testing.T) string {
	if p := filepath.Join(kubetest.AssetsDir(), "kubectl"); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is neither in the Kubernetes binaries folder nor on PATH: run hack/kube-bins.sh")
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// render returns the objects `kubectl kustomize deploy/` renders.
func render(t *testing.T) []*unstructured.Unstructured { return renderDir(t, ".") }

// renderDir returns the objects `kubectl kustomize` renders for dir.
func renderDir(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := exec.Command(kubectl(t), "kustomize", "--load-restrictor=LoadRestrictionsNone", dir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize deploy/%s: %v\n%s", dir, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode rendered manifests: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

// rendered returns the one rendered object of kind and name, decoded into
// a typed T.
func rendered[T any](t *testing.T, objs []*unstructured.Unstructured, kind, name string) *T {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			out := new(T)
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
				t.Fatalf("decode rendered %s %s: %v", kind, name, err)
			}
			return out
		}
	}
	t.Fatalf("deploy/ renders no %s %s", kind, name)
	return nil
}

// create creates objs on cp's API server; a namespace may exist already.
func create(t *testing.T, cp *kubetest.ControlPlane, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if err := cp.Client.Create(context.Background(), o.DeepCopy()); err != nil && !(o.GetKind() == "Namespace" && client.IgnoreAlreadyExists(err) == nil) {
			t.Errorf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func TestKustomizeRendersAndApplies(t *testing.T) {
	objs := render(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetKind() != "Namespace" && o.GetKind() != "CustomResourceDefinition" && o.GetKind() != "ClusterRole" &&
			o.GetKind() != "ClusterRoleBinding" && o.GetKind() != "MutatingWebhookConfiguration" && o.GetNamespace() != "ddi-system" {
			t.Errorf("%s %s is in namespace %q, want ddi-system", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	for kind, n := range map[string]int{"Namespace": 1, "CustomResourceDefinition": 4, "ServiceAccount": 1, "ClusterRole": 3, "ClusterRoleBinding": 2,
		"Role": 1, "RoleBinding": 1, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1, "NetworkPolicy": 1, "MutatingWebhookConfiguration": 1} {
		if kinds[kind] != n {
			t.Errorf("rendered %d %s, want %d", kinds[kind], kind, n)
		}
	}

	// Every object is accepted by a real API server (schema, RBAC rules,
	// the webhook configuration's selectors).
	cp := kubetest.RunControlPlane(t, kubetest.Options{NoController: true, SkipCRDs: true})
	create(t, cp, objs)
}

// TestLocalOverlayRendersTheBaseObjects: deploy/overlays/local lists the
// base's files itself (kustomize refuses a base that contains its
// overlay), so a file added to deploy/kustomization.yaml must be added
// there too, or the local cluster runs without it.
func TestLocalOverlayRendersTheBaseObjects(t *testing.T) {
	ids := func(objs []*unstructured.Unstructured) []string {
		var out []string
		for _, o := range objs {
			out = append(out, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
		}
		slices.Sort(out)
		return out
	}
	base, overlay := ids(render(t)), ids(renderDir(t, "overlays/local"))
	if !slices.Equal(base, overlay) {
		t.Errorf("deploy/overlays/local renders other objects than deploy/: keep its resources in step with deploy/kustomization.yaml\nbase:    %v\noverlay: %v", base, overlay)
	}
}
