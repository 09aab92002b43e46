package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
// the Provider object, into an immutable Secret in the store's secret
// namespace made for the Provider, which is replaced when the material
// changes and deleted when it goes, or when the Provider goes.
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
	secretNS := s.opts.SecretNamespace
	sec, err := getSecret(t, secretNS, first)
	if err != nil {
		t.Fatalf("get the inline Secret %s/%s: %v", secretNS, first, err)
	}
	if !strings.HasPrefix(first, "team-a.with-secret-") {
		t.Errorf("inline Secret name = %q, want it to start with team-a.with-secret-", first)
	}
	wantLabels := map[string]string{partitionLabel: s.opts.Labels[partitionLabel], v1alpha1.LabelSecretOf: string(obj.UID)}
	if diff := cmp.Diff(wantLabels, sec.Labels); diff != "" {
		t.Errorf("inline Secret labels mismatch (-want +got):\n%s", diff)
	}
	if got := sec.Annotations[v1alpha1.AnnotationSecretProvider]; got != "team-a/with-secret" {
		t.Errorf("inline Secret annotation %s = %q, want team-a/with-secret", v1alpha1.AnnotationSecretProvider, got)
	}
	if sec.Type != SecretType || !ptr.Deref(sec.Immutable, false) || len(sec.OwnerReferences) != 0 {
		t.Errorf("inline Secret type %q, immutable %v, owners %v; want %q, immutable, no owner references (they cannot cross namespaces)", sec.Type, sec.Immutable, sec.OwnerReferences, SecretType)
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
	if _, err := getSecret(t, secretNS, first); !apierrors.IsNotFound(err) {
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
	if _, err := getSecret(t, secretNS, second); !apierrors.IsNotFound(err) {
		t.Errorf("get the dropped Secret %s error = %v, want NotFound", second, err)
	}

	// The Provider goes: its Secret goes with it.
	updated.Revision, updated.Secret = 0, map[string]string{"password": "last"}
	if _, err := s.Update(t.Context(), updated); err != nil {
		t.Fatalf("Update() with material again error = %v, want nil", err)
	}
	third := providerObject(t, "team-a", "with-secret").Annotations[v1alpha1.AnnotationInlineSecret]
	if err := s.Delete(t.Context(), "team-a", "with-secret", 0); err != nil {
		t.Fatalf("Delete() error = %v, want nil", err)
	}
	waitSecretGone(t, secretNS, third)
}

// waitSecretGone waits until Secret namespace/name is deleted.
func waitSecretGone(t *testing.T, namespace, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := getSecret(t, namespace, name)
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the inline Secret %s/%s of a deleted provider is still there after 20s (err %v)", namespace, name, err)
		}
		time.Sleep(50 * time.Millisecond)
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

// TestForeignSecretUntouched checks that a Provider whose
// ddi.dev/inline-secret annotation names a Secret the store did not create
// for it gets neither that Secret's data nor its deletion: not through a
// read, a watch event, an Update that drops or replaces the material, nor
// a Delete. The annotation is anyone's to write who may edit Providers;
// the Secrets it could name are not.
func TestForeignSecretUntouched(t *testing.T) {
	s := newTestStore(t, Options{})
	c := cluster(t)
	ctx := t.Context()
	secretNS := s.opts.SecretNamespace
	ensureNamespace(t, c, secretNS)
	_, rev, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, err := s.Watch(ctx, rev)
	if err != nil {
		t.Fatal(err)
	}

	// Another provider's own inline Secret.
	victim := registration("team-a", "victim", "")
	victim.Secret = map[string]string{"token": "victims-material"}
	if _, err := s.Create(ctx, victim); err != nil {
		t.Fatal(err)
	}
	victimSecret := providerObject(t, "team-a", "victim").Annotations[v1alpha1.AnnotationInlineSecret]
	// Secrets nobody made for the borrower, under the same names in the
	// Provider's namespace and in the store's: a plain one, and one that
	// copies the type and label of an inline Secret.
	var foreign []*corev1.Secret
	for _, ns := range []string{"team-a", secretNS} {
		for _, f := range []struct {
			name string
			typ  corev1.SecretType
		}{
			{name: "someone-elses", typ: corev1.SecretTypeOpaque},
			{name: "look-alike", typ: SecretType},
		} {
			sec := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: f.name, Labels: map[string]string{v1alpha1.LabelSecretOf: "borrower"}},
				Type:       f.typ,
				StringData: map[string]string{"token": "not-yours"},
			}
			if err := c.Create(ctx, sec); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			foreign = append(foreign, sec)
			t.Cleanup(func() { _ = c.Delete(context.Background(), sec) })
		}
	}

	point := func(t *testing.T, target string) {
		t.Helper()
		obj := providerObject(t, "team-a", "borrower")
		setAnnotation(obj, v1alpha1.AnnotationInlineSecret, target)
		if err := c.Update(ctx, obj); err != nil {
			t.Fatalf("point the borrower's annotation at %s: %v", target, err)
		}
	}
	noForeignData := func(t *testing.T, what string, p registry.Provider) {
		t.Helper()
		if v := p.Secret["token"]; v == "not-yours" || v == "victims-material" {
			t.Errorf("%s: the borrower's secret material is %q, from a Secret that is not its own", what, v)
		}
	}
	for _, target := range []string{"someone-elses", "look-alike", victimSecret} {
		t.Run(target, func(t *testing.T) {
			created, err := s.Create(ctx, registration("team-a", "borrower", ""))
			if err != nil {
				t.Fatal(err)
			}

			point(t, target)
			got, err := s.Get(ctx, "team-a", "borrower")
			if err != nil {
				t.Fatalf("Get() error = %v, want nil", err)
			}
			noForeignData(t, "Get()", got)
			list, _, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range list {
				if p.Name == "borrower" {
					noForeignData(t, "List()", p)
				}
			}

			// An Update that drops the material, then one that replaces it.
			drop := created
			drop.Revision, drop.Secret = 0, nil
			if _, err := s.Update(ctx, drop); err != nil {
				t.Fatalf("Update() without material error = %v, want nil", err)
			}
			point(t, target)
			replace := created
			replace.Revision, replace.Secret = 0, map[string]string{"token": "fresh"}
			updated, err := s.Update(ctx, replace)
			if err != nil {
				t.Fatalf("Update() with new material error = %v, want nil", err)
			}
			if updated.Secret["token"] != "fresh" {
				t.Errorf("Update() secret = %v, want the new material", updated.Secret)
			}

			// And a Delete, with the annotation pointing away again.
			point(t, target)
			if err := s.Delete(ctx, "team-a", "borrower", 0); err != nil {
				t.Fatalf("Delete() error = %v, want nil", err)
			}
			waitCleanedUp(t, s)
		})
	}

	for _, sec := range foreign {
		if _, err := getSecret(t, sec.Namespace, sec.Name); err != nil {
			t.Errorf("get Secret %s/%s after the borrower pointed at it: %v, want it untouched", sec.Namespace, sec.Name, err)
		}
	}
	if _, err := getSecret(t, secretNS, victimSecret); err != nil {
		t.Errorf("get the victim's inline Secret %s/%s after the borrower pointed at it: %v, want it untouched", secretNS, victimSecret, err)
	}
	if got, err := s.Get(ctx, "team-a", "victim"); err != nil || got.Secret["token"] != "victims-material" {
		t.Errorf("Get(victim) = %v, %v; want its own material", got.Secret, err)
	}
	for {
		select {
		case ev := <-events:
			if ev.Provider.Name == "borrower" {
				noForeignData(t, fmt.Sprintf("%s event at revision %d", ev.Type, ev.Revision), ev.Provider)
			}
			continue
		case <-time.After(500 * time.Millisecond):
		}
		break
	}
}

// waitCleanedUp waits until s has deleted the inline Secrets of the
// providers deleted so far: it deletes one more provider with material and
// waits for its Secret to go, which the store does in order.
func waitCleanedUp(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	p := registration("team-a", "sentinel", "")
	if _, err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	name := providerObject(t, "team-a", "sentinel").Annotations[v1alpha1.AnnotationInlineSecret]
	if err := s.Delete(ctx, "team-a", "sentinel", 0); err != nil {
		t.Fatal(err)
	}
	waitSecretGone(t, s.opts.SecretNamespace, name)
}

// TestOrphanedSecretsCollected checks that a store deletes, when it
// starts, the inline Secrets of its partition that no Provider names any
// more (their Provider went while no store watched, or an Update stopped
// half way), and nothing else.
func TestOrphanedSecretsCollected(t *testing.T) {
	first := newTestStore(t, Options{})
	c := cluster(t)
	ctx := t.Context()
	secretNS := first.opts.SecretNamespace
	for _, name := range []string{"gone", "kept"} {
		p := registration("team-a", name, "")
		p.Secret = map[string]string{"token": name}
		if _, err := first.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	gone := providerObject(t, "team-a", "gone")
	kept := providerObject(t, "team-a", "kept")
	goneSecret := gone.Annotations[v1alpha1.AnnotationInlineSecret]
	keptSecret := kept.Annotations[v1alpha1.AnnotationInlineSecret]
	// An Update that wrote its new Secret and stopped.
	halfWay := "team-a.kept-halfway"
	if err := first.createSecret(ctx, kept, halfWay, map[string]string{"token": "never used"}); err != nil {
		t.Fatal(err)
	}
	// A Secret of someone else's, with the label but not the type.
	other := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: secretNS, Name: "not-an-inline-secret", Labels: maps.Clone(first.opts.Labels)},
		StringData: map[string]string{"token": "not ours"},
	}
	other.Labels[v1alpha1.LabelSecretOf] = string(gone.UID)
	if err := c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), other) })

	// No store watches while the Provider goes.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}

	// A store starting later, its clock past the orphans' grace (not
	// past the leases).
	later := newTestStore(t, Options{Labels: first.opts.Labels, Now: func() time.Time { return time.Now().Add(orphanGrace + time.Minute) }})
	waitSecretGone(t, secretNS, goneSecret)
	waitSecretGone(t, secretNS, halfWay)
	for _, name := range []string{keptSecret, other.Name} {
		if _, err := getSecret(t, secretNS, name); err != nil {
			t.Errorf("get Secret %s/%s after collecting orphans: %v, want it kept", secretNS, name, err)
		}
	}
	if got, err := later.Get(ctx, "team-a", "kept"); err != nil || got.Secret["token"] != "kept" {
		t.Errorf("Get(kept) = %v, %v; want its material", got.Secret, err)
	}
}
