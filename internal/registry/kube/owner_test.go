package kube

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
)

func TestParsePodOwner(t *testing.T) {
	tests := []struct {
		name      string
		owner     string
		wantNS    string
		wantName  string
		wantUID   types.UID
		wantOK    bool
		wantError bool
	}{
		{name: "pod", owner: "pod:team-a/fn-1/0f1e2d3c", wantNS: "team-a", wantName: "fn-1", wantUID: "0f1e2d3c", wantOK: true},
		{name: "not a pod", owner: "sidecar:fn-1"},
		{name: "empty", owner: ""},
		{name: "missing uid", owner: "pod:team-a/fn-1", wantOK: true, wantError: true},
		{name: "empty name", owner: "pod:team-a//0f1e", wantOK: true, wantError: true},
		{name: "extra part", owner: "pod:team-a/fn-1/0f1e/x", wantOK: true, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, name, uid, ok, err := ParsePodOwner(tt.owner)
			if (err != nil) != tt.wantError {
				t.Fatalf("ParsePodOwner(%q) error = %v, want error %t", tt.owner, err, tt.wantError)
			}
			if ok != tt.wantOK {
				t.Errorf("ParsePodOwner(%q) ok = %t, want %t", tt.owner, ok, tt.wantOK)
			}
			if err == nil && (ns != tt.wantNS || name != tt.wantName || uid != tt.wantUID) {
				t.Errorf("ParsePodOwner(%q) = %q, %q, %q, want %q, %q, %q", tt.owner, ns, name, uid, tt.wantNS, tt.wantName, tt.wantUID)
			}
			if ok && err == nil {
				if got := PodOwner(ns, name, uid); got != tt.owner {
					t.Errorf("PodOwner(%q, %q, %q) = %q, want %q", ns, name, uid, got, tt.owner)
				}
			}
		})
	}
}

func createPod(t *testing.T, c client.Client, namespace, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "fn", Image: "example.com/fn:1"}}},
	}
	if err := c.Create(t.Context(), pod); err != nil {
		t.Fatalf("create pod %s/%s: %v", namespace, name, err)
	}
	return pod
}

func registration(namespace, name, owner string) registry.Provider {
	return registry.Provider{
		Namespace: namespace,
		Name:      name,
		Type:      "http",
		Version:   "1.0.0",
		Endpoints: []registry.Endpoint{{URL: "http://10.1.2.3:8080", Ready: true}},
		Secret:    map[string]string{"token": "t0ken"},
		Lease:     &registry.Lease{TTL: registry.Duration(time.Hour)},
		Owner:     owner,
	}
}

// TestPodOwnerReference checks that a provider registered by a Pod gets an
// ownerReference to it, that the owner survives a round trip, and that an
// Update that drops the owner drops the reference.
func TestPodOwnerReference(t *testing.T) {
	s := newTestStore(t, Options{})
	c := cluster(t)
	pod := createPod(t, c, "team-a", "owner-ref")
	t.Cleanup(func() { _ = c.Delete(t.Context(), pod) })

	owner := PodOwner(pod.Namespace, pod.Name, pod.UID)
	created, err := s.Create(t.Context(), registration("team-a", "owned", owner))
	if err != nil {
		t.Fatalf("Create() error = %v, want nil", err)
	}
	if created.Owner != owner {
		t.Errorf("Create() owner = %q, want %q", created.Owner, owner)
	}
	want := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}
	if diff := cmp.Diff(want, providerObject(t, "team-a", "owned").OwnerReferences); diff != "" {
		t.Errorf("ownerReferences mismatch (-want +got):\n%s", diff)
	}

	next := created
	next.Owner = ""
	if _, err := s.Update(t.Context(), next); err != nil {
		t.Fatalf("Update() without owner error = %v, want nil", err)
	}
	if refs := providerObject(t, "team-a", "owned").OwnerReferences; len(refs) != 0 {
		t.Errorf("ownerReferences after dropping the owner = %v, want none", refs)
	}
}

func TestPodOwnerRefused(t *testing.T) {
	s := newTestStore(t, Options{})
	tests := []struct {
		name  string
		owner string
		want  string
	}{
		{name: "pod in another namespace", owner: PodOwner("team-b", "fn-1", "0f1e"), want: "owner references cannot cross namespaces"},
		{name: "malformed pod owner", owner: "pod:team-a/fn-1", want: "write it as pod:<namespace>/<name>/<uid>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Create(t.Context(), registration("team-a", "refused", tt.owner))
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field != "owner" {
				t.Fatalf("Create() with owner %q error = %v, want a *registry.FieldError for owner", tt.owner, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Create() error = %q, want it to say %q", err, tt.want)
			}
		})
	}
}

// TestGarbageCollection runs kube-controller-manager's garbage collector
// and checks that deleting the registering Pod deletes the run-time
// registration (a Delete event on the store's watch), with no lease
// sweeper involved, and that the store then deletes its inline Secret.
func TestGarbageCollection(t *testing.T) {
	s := newTestStore(t, Options{SweepInterval: time.Hour})
	c := cluster(t)
	startGarbageCollector(t)

	pod := createPod(t, c, "team-a", "gc-fn")
	created, err := s.Create(t.Context(), registration("team-a", "gc-registration", PodOwner(pod.Namespace, pod.Name, pod.UID)))
	if err != nil {
		t.Fatalf("Create() error = %v, want nil", err)
	}
	secretName := providerObject(t, "team-a", "gc-registration").Annotations[v1alpha1.AnnotationInlineSecret]
	events, err := s.Watch(t.Context(), created.Revision)
	if err != nil {
		t.Fatalf("Watch() error = %v, want nil", err)
	}
	if err := c.Delete(t.Context(), pod); err != nil {
		t.Fatalf("delete pod: %v", err)
	}

	select {
	case ev := <-events:
		if ev.Type != registry.Delete || ev.Provider.Key() != "team-a/gc-registration" {
			t.Fatalf("event after deleting the pod = %s %s, want DELETE team-a/gc-registration", ev.Type, ev.Provider.Key())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the registration was not deleted within 60s of its pod")
	}
	if _, err := s.Get(t.Context(), "team-a", "gc-registration"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get() after the pod went error = %v, want ErrNotFound", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.Get(t.Context(), client.ObjectKey{Namespace: s.opts.SecretNamespace, Name: secretName}, &corev1.Secret{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inline Secret %s still there 60s after its Provider went (err %v)", secretName, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startGarbageCollector runs kube-controller-manager with only the garbage
// collector against the test API server until the test ends.
func startGarbageCollector(t *testing.T) {
	t.Helper()
	cluster(t)
	bin := filepath.Join(clusterEnv.BinaryAssetsDirectory, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kube-controller-manager is missing from %s: build it with hack/kube-bins.sh", clusterEnv.BinaryAssetsDirectory)
	}
	user, err := clusterEnv.ControlPlane.AddUser(envtest.User{Name: "gc", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("add a user for kube-controller-manager: %v", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd := exec.Command(bin, "--kubeconfig="+path, "--leader-elect=false", "--secure-port=0",
		"--controllers=garbage-collector-controller")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kube-controller-manager: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("kube-controller-manager output:\n%s", tail(out.String(), 4000))
		}
	})
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// providerObject reads a Provider object directly.
func providerObject(t *testing.T, namespace, name string) *v1alpha1.Provider {
	t.Helper()
	var obj v1alpha1.Provider
	if err := cluster(t).Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: name}, &obj); err != nil {
		t.Fatalf("get provider %s/%s: %v", namespace, name, err)
	}
	return &obj
}
