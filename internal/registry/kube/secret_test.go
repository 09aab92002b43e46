package kube

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
)

func getSecret(t *testing.T, namespace, name string) (*corev1.Secret, error) {
	t.Helper()
	var sec corev1.Secret
	err := cluster(t).Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: name}, &sec)
	return &sec, err
}

// TestInlineSecret checks where inline secret material goes: never into
// the Provider object, into an immutable Secret the Provider owns, which
// is replaced when the material changes and deleted when it goes.
func TestInlineSecret(t *testing.T) {
	s := newTestStore(t, Options{})
	p := registration("team-a", "with-secret", "")
	p.Secret = map[string]string{"username": "app", "password": "s3cret"}
	created, err := s.Create(t.Context(), p)
	if err != nil {
		t.Fatalf("Create() error = %v, want nil", err)
	}

	obj := providerObject(t, "team-a", "with-secret")
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "s3cret") {
		t.Errorf("the Provider object holds the secret material: %s", raw)
	}
	first := obj.Annotations[v1alpha1.AnnotationInlineSecret]
	sec, err := getSecret(t, "team-a", first)
	if err != nil {
		t.Fatalf("get the inline Secret %q: %v", first, err)
	}
	wantOwner := []metav1.OwnerReference{{APIVersion: "ddi.dev/v1alpha1", Kind: "Provider", Name: "with-secret", UID: obj.UID, Controller: ptr.To(true)}}
	if diff := cmp.Diff(wantOwner, sec.OwnerReferences); diff != "" {
		t.Errorf("inline Secret ownerReferences mismatch (-want +got):\n%s", diff)
	}
	if sec.Type != SecretType || !ptr.Deref(sec.Immutable, false) || sec.Labels[v1alpha1.LabelSecretOf] != "with-secret" {
		t.Errorf("inline Secret type %q, immutable %v, labels %v; want %q, immutable, labelled %s=with-secret", sec.Type, sec.Immutable, sec.Labels, SecretType, v1alpha1.LabelSecretOf)
	}
	if diff := cmp.Diff(p.Secret, secretData(sec)); diff != "" {
		t.Errorf("inline Secret data mismatch (-want +got):\n%s", diff)
	}

	// Another process (a store without this one's cache) reads the same.
	other := newTestStore(t, Options{Labels: s.opts.Labels})
	got, err := other.Get(t.Context(), "team-a", "with-secret")
	if err != nil {
		t.Fatalf("Get() from another store error = %v, want nil", err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("Get() from another store mismatch (-want +got):\n%s", diff)
	}

	// The same material keeps the Secret.
	next := created
	next.Version = "1.1.0"
	if _, err := s.Update(t.Context(), next); err != nil {
		t.Fatalf("Update() error = %v, want nil", err)
	}
	if name := providerObject(t, "team-a", "with-secret").Annotations[v1alpha1.AnnotationInlineSecret]; name != first {
		t.Errorf("inline Secret after an update that kept the material = %q, want %q", name, first)
	}

	// New material: a new Secret, and the old one goes.
	next.Revision = 0
	next.Secret = map[string]string{"username": "app", "password": "rotated"}
	updated, err := s.Update(t.Context(), next)
	if err != nil {
		t.Fatalf("Update() with new material error = %v, want nil", err)
	}
	second := providerObject(t, "team-a", "with-secret").Annotations[v1alpha1.AnnotationInlineSecret]
	if second == "" || second == first {
		t.Errorf("inline Secret after rotating the material = %q, want a new one (was %q)", second, first)
	}
	if _, err := getSecret(t, "team-a", first); !apierrors.IsNotFound(err) {
		t.Errorf("get the superseded Secret %s error = %v, want NotFound", first, err)
	}
	if got, err := other.Get(t.Context(), "team-a", "with-secret"); err != nil || got.Secret["password"] != "rotated" {
		t.Errorf("Get() from another store after rotation = %v, %v; want password %q", got.Secret, err, "rotated")
	}

	// No material: no Secret.
	updated.Secret = nil
	if _, err := s.Update(t.Context(), updated); err != nil {
		t.Fatalf("Update() without material error = %v, want nil", err)
	}
	if name, ok := providerObject(t, "team-a", "with-secret").Annotations[v1alpha1.AnnotationInlineSecret]; ok {
		t.Errorf("inline Secret annotation after dropping the material = %q, want none", name)
	}
	if _, err := getSecret(t, "team-a", second); !apierrors.IsNotFound(err) {
		t.Errorf("get the dropped Secret %s error = %v, want NotFound", second, err)
	}
}

// TestInlineSecretNotOwned checks that the annotation cannot pull in a
// Secret the Provider does not own.
func TestInlineSecretNotOwned(t *testing.T) {
	s := newTestStore(t, Options{})
	c := cluster(t)
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "someone-elses", Labels: map[string]string{v1alpha1.LabelSecretOf: "borrower"}},
		StringData: map[string]string{"password": "not-yours"},
	}
	if err := c.Create(t.Context(), foreign); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(t.Context(), foreign) })
	if _, err := s.Create(t.Context(), registration("team-a", "borrower", "")); err != nil {
		t.Fatal(err)
	}
	obj := providerObject(t, "team-a", "borrower")
	obj.Annotations[v1alpha1.AnnotationInlineSecret] = foreign.Name
	if err := c.Update(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), "team-a", "borrower")
	if err != nil {
		t.Fatalf("Get() error = %v, want nil", err)
	}
	if got.Secret != nil {
		t.Errorf("Get() secret = %v, want none: the Secret is not owned by the Provider", got.Secret)
	}
}

// TestServiceRefEndpoints checks a Provider whose endpoints the controller
// derives: the store reads status.endpoints, and an Update keeps the
// serviceRef instead of writing endpoints into the spec.
func TestServiceRefEndpoints(t *testing.T) {
	s := newTestStore(t, Options{})
	c := cluster(t)
	obj := &v1alpha1.Provider{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "from-service", Labels: s.opts.Labels},
		Spec: v1alpha1.ProviderSpec{
			Type:       "postgresql",
			ServiceRef: &v1alpha1.ServiceReference{Name: "orders-db"},
		},
	}
	if err := c.Create(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	obj.Status.Endpoints = []v1alpha1.EndpointStatus{{URL: "postgresql://10.0.0.7:5432", Ready: true}}
	if err := c.Status().Update(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), "team-a", "from-service")
	if err != nil {
		t.Fatalf("Get() error = %v, want nil", err)
	}
	want := []registry.Endpoint{{URL: "postgresql://10.0.0.7:5432", Ready: true}}
	if diff := cmp.Diff(want, got.Endpoints); diff != "" {
		t.Errorf("Get() endpoints mismatch (-want +got):\n%s", diff)
	}

	got.Version = "16.1.0"
	got.Endpoints = append(got.Endpoints, registry.Endpoint{URL: "postgresql://ignored:5432", Ready: true})
	updated, err := s.Update(t.Context(), got)
	if err != nil {
		t.Fatalf("Update() error = %v, want nil", err)
	}
	if diff := cmp.Diff(want, updated.Endpoints); diff != "" {
		t.Errorf("Update() endpoints mismatch (-want +got):\n%s", diff)
	}
	after := providerObject(t, "team-a", "from-service")
	if after.Spec.ServiceRef == nil || after.Spec.Endpoints != nil || after.Spec.Version != "16.1.0" {
		t.Errorf("spec after Update = serviceRef %v, endpoints %v, version %q; want the serviceRef kept, no endpoints, version 16.1.0", after.Spec.ServiceRef, after.Spec.Endpoints, after.Spec.Version)
	}
}

// TestPartition checks that a store with partition labels sees only its
// own Providers, and one without sees them all.
func TestPartition(t *testing.T) {
	s := newTestStore(t, Options{})
	c := cluster(t)
	outsider := &v1alpha1.Provider{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "outsider"},
		Spec:       v1alpha1.ProviderSpec{Type: "http", Endpoints: []v1alpha1.Endpoint{{URL: "http://outsider:80", Ready: true}}},
	}
	if err := c.Create(t.Context(), outsider); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(t.Context(), outsider) })
	if _, err := s.Create(t.Context(), registration("team-b", "insider", "")); err != nil {
		t.Fatal(err)
	}

	if _, err := s.Get(t.Context(), "team-b", "outsider"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get(outsider) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Update(t.Context(), registration("team-b", "outsider", "")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Update(outsider) error = %v, want ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), "team-b", "outsider", 0); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Delete(outsider) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Create(t.Context(), registration("team-b", "outsider", "")); !errors.Is(err, registry.ErrExists) {
		t.Errorf("Create(outsider) error = %v, want ErrExists: names are unique across partitions", err)
	}
	list, _, err := s.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "insider" {
		t.Errorf("List() = %v, want only insider", keys(list))
	}

	all, err := New(t.Context(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	for _, name := range []string{"outsider", "insider"} {
		if _, err := all.Get(t.Context(), "team-b", name); err != nil {
			t.Errorf("Get(%s) from an unpartitioned store error = %v, want nil", name, err)
		}
	}
}

func keys(list []registry.Provider) []string {
	var out []string
	for _, p := range list {
		out = append(out, p.Key())
	}
	return out
}

// TestRefusedProviderIsFieldError checks that a provider the API server
// refuses comes back as a *registry.FieldError naming the field.
func TestRefusedProviderIsFieldError(t *testing.T) {
	s := newTestStore(t, Options{})
	tests := []struct {
		name      string
		mutate    func(p *registry.Provider)
		wantField string
		wantMsg   string
	}{
		{name: "bad type", mutate: func(p *registry.Provider) { p.Type = "Web App" }, wantField: "spec.type", wantMsg: "must be a DNS-1123 label"},
		{name: "URL with credentials", mutate: func(p *registry.Provider) { p.Endpoints[0].URL = "http://u:p@a:1" }, wantField: "spec.endpoints[0].url", wantMsg: "must not carry user information"},
		{name: "no endpoints", mutate: func(p *registry.Provider) { p.Endpoints, p.Lease = nil, nil }, wantField: "spec", wantMsg: "spec.endpoints or spec.serviceRef is required"},
		{name: "short lease", mutate: func(p *registry.Provider) { p.Lease.TTL = registry.Duration(time.Millisecond) }, wantField: "spec.lease.ttl", wantMsg: "between 1s and 24h"},
		{name: "missing namespace", mutate: func(p *registry.Provider) { p.Namespace = "no-such-namespace" }, wantField: "namespace", wantMsg: "does not exist in the cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := registration("team-a", "refused", "")
			tt.mutate(&p)
			_, err := s.Create(t.Context(), p)
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Create() error = %v, want a *registry.FieldError", err)
			}
			if strings.Contains(err.Error(), "u:p@") {
				t.Errorf("Create() error = %q, want it without the credentials of the refused URL", err)
			}
			if fe.Field != tt.wantField || !strings.Contains(fe.Error(), tt.wantMsg) {
				t.Errorf("Create() error field %q, message %q; want field %q saying %q", fe.Field, fe.Error(), tt.wantField, tt.wantMsg)
			}
		})
	}
}

// TestWatchBeforeStart checks that the store's log starts at its first
// list: older revisions are compacted, the list's is not.
func TestWatchBeforeStart(t *testing.T) {
	s := newTestStore(t, Options{})
	_, rev, err := s.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Watch(t.Context(), s.logStart-1); !errors.Is(err, registry.ErrCompacted) {
		t.Errorf("Watch(%d), before the store started, error = %v, want ErrCompacted", s.logStart-1, err)
	}
	if _, err := s.Watch(t.Context(), rev); err != nil {
		t.Errorf("Watch(%d), the list revision, error = %v, want nil", rev, err)
	}
}
