package registrytest

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

func testCRUD(t *testing.T, _ *config, s registry.Store) {
	ctx := t.Context()
	want := provider("team-a", "orders-db")

	created := mustCreate(t, s, want)
	if diff := cmp.Diff(want, created, sameContent); diff != "" {
		t.Errorf("Create() returned a different provider (-want +got):\n%s", diff)
	}
	got := mustGet(t, s, "team-a", "orders-db")
	if diff := cmp.Diff(created, got, sameState); diff != "" {
		t.Errorf("Get() after Create mismatch (-want +got):\n%s", diff)
	}

	next := created
	next.Version = "15.3.0"
	next.Labels = map[string]string{"tier": "silver"}
	next.Endpoints = []registry.Endpoint{{URL: "postgres://orders-db-2.team-a:5432/app", Ready: true}}
	next.Config = nil
	updated := mustUpdate(t, s, next)
	if updated.Revision <= created.Revision {
		t.Errorf("Update() revision = %d, want > %d (the Create revision)", updated.Revision, created.Revision)
	}
	if diff := cmp.Diff(next, updated, sameContent); diff != "" {
		t.Errorf("Update() returned a different provider (-want +got):\n%s", diff)
	}
	got = mustGet(t, s, "team-a", "orders-db")
	if diff := cmp.Diff(updated, got, sameState); diff != "" {
		t.Errorf("Get() after Update mismatch (-want +got):\n%s", diff)
	}

	if err := s.Delete(ctx, "team-a", "orders-db", updated.Revision); err != nil {
		t.Fatalf("Delete(team-a/orders-db at revision %d) error = %v, want nil", updated.Revision, err)
	}
	if _, err := s.Get(ctx, "team-a", "orders-db"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get() after Delete error = %v, want ErrNotFound", err)
	}

	// The key is free again, and the new provider takes a new revision.
	again := mustCreate(t, s, want)
	if again.Revision <= updated.Revision {
		t.Errorf("Create() after Delete revision = %d, want > %d", again.Revision, updated.Revision)
	}
}

func testCreateExisting(t *testing.T, _ *config, s registry.Store) {
	first := mustCreate(t, s, provider("default", "cache"))
	other := provider("default", "cache")
	other.Type = "redis"
	if _, err := s.Create(t.Context(), other); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("Create(default/cache) twice error = %v, want ErrExists", err)
	}
	got := mustGet(t, s, "default", "cache")
	if diff := cmp.Diff(first, got, sameState); diff != "" {
		t.Errorf("Get() after a refused Create changed (-want +got):\n%s", diff)
	}
	// The same name in another namespace is another provider.
	mustCreate(t, s, provider("team-a", "cache"))
}

func testNotFound(t *testing.T, _ *config, s registry.Store) {
	ctx := t.Context()
	mustCreate(t, s, provider("team-a", "present"))
	missing := provider("default", "present") // same name, other namespace
	if _, err := s.Get(ctx, "default", "present"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get(default/present) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, missing); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Update(default/present) error = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "default", "present", 0); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Delete(default/present) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Renew(ctx, "default", "present", registry.MinLeaseTTL); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Renew(default/present) error = %v, want ErrNotFound", err)
	}
	if list, _ := mustList(t, s); len(list) != 1 {
		t.Errorf("List() has %d providers after failed writes, want 1", len(list))
	}
}

func testUpdateConflict(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	created := mustCreate(t, s, provider("default", "queue"))
	current := created
	current.Version = "16.0.0"
	current = mustUpdate(t, s, current)
	events := mustWatch(ctx, t, s, current.Revision)

	stale := created // carries the Create revision
	stale.Version = "9.9.9"
	stale.Config = map[string]string{"database": "overwritten"}
	if _, err := s.Update(ctx, stale); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("Update() at stale revision %d error = %v, want ErrConflict", stale.Revision, err)
	}
	future := current
	future.Revision = current.Revision + 1000
	if _, err := s.Update(ctx, future); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("Update() at future revision %d error = %v, want ErrConflict", future.Revision, err)
	}
	got := mustGet(t, s, "default", "queue")
	if diff := cmp.Diff(current, got, sameState); diff != "" {
		t.Errorf("Get() after a conflicting Update changed (-want +got):\n%s", diff)
	}

	// Failed writes emit nothing: the next event is the next good write.
	final := mustUpdate(t, s, got)
	evs := receive(t, events, 1, c.eventTimeout)
	checkChanges(t, "Watch", evs, []change{{registry.Put, "default/queue", final.Revision}})
}

func testDeleteConflict(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	created := mustCreate(t, s, provider("default", "bucket"))
	current := mustUpdate(t, s, created)
	if err := s.Delete(ctx, "default", "bucket", created.Revision); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("Delete() at stale revision %d error = %v, want ErrConflict", created.Revision, err)
	}
	got := mustGet(t, s, "default", "bucket")
	if diff := cmp.Diff(current, got, sameState); diff != "" {
		t.Errorf("Get() after a conflicting Delete changed (-want +got):\n%s", diff)
	}
	if err := s.Delete(ctx, "default", "bucket", current.Revision); err != nil {
		t.Fatalf("Delete() at current revision %d error = %v, want nil", current.Revision, err)
	}
}

func testUnconditionalWrites(t *testing.T, _ *config, s registry.Store) {
	ctx := t.Context()
	created := mustCreate(t, s, provider("default", "search"))
	mustUpdate(t, s, created) // moves the stored revision on

	blind := provider("default", "search") // Revision 0: no precondition
	blind.Version = "16.1.0"
	got := mustUpdate(t, s, blind)
	if got.Version != "16.1.0" {
		t.Errorf("Update() at revision 0 version = %q, want %q", got.Version, "16.1.0")
	}
	if err := s.Delete(ctx, "default", "search", 0); err != nil {
		t.Errorf("Delete() at revision 0 error = %v, want nil", err)
	}
}

func testRevisionsIncrease(t *testing.T, _ *config, s registry.Store) {
	ctx := t.Context()
	_, last := mustList(t, s)
	step := func(what string, rev int64) {
		t.Helper()
		if rev <= last {
			t.Errorf("%s revision = %d, want > %d (the previous write's)", what, rev, last)
		}
		last = rev
	}
	a := mustCreate(t, s, provider("default", "a"))
	step("Create(a)", a.Revision)
	b := mustCreate(t, s, leased(provider("team-a", "b"), registry.MaxLeaseTTL))
	step("Create(b)", b.Revision)
	a = mustUpdate(t, s, a)
	step("Update(a)", a.Revision)
	b, err := s.Renew(ctx, "team-a", "b", registry.MaxLeaseTTL)
	if err != nil {
		t.Fatalf("Renew(team-a/b) error = %v, want nil", err)
	}
	step("Renew(b)", b.Revision)
	if err := s.Delete(ctx, "default", "a", 0); err != nil {
		t.Fatalf("Delete(a) error = %v, want nil", err)
	}
	_, rev := mustList(t, s)
	step("List() after Delete(a)", rev)
	if got := mustGet(t, s, "team-a", "b"); got.Revision != b.Revision {
		t.Errorf("Get(b) revision = %d, want %d (its last write)", got.Revision, b.Revision)
	}
	a = mustCreate(t, s, provider("default", "a"))
	step("Create(a) again", a.Revision)
	if _, rev := mustList(t, s); rev < a.Revision {
		t.Errorf("List() revision = %d, want >= %d (the last write)", rev, a.Revision)
	}
}

func testListSorted(t *testing.T, _ *config, s registry.Store) {
	var want []string
	// Create in an order that is neither sorted nor reverse-sorted.
	for _, name := range []string{"m", "b", "z", "a"} {
		for _, ns := range []string{"team-b", registry.DefaultNamespace, "team-a"} {
			p := mustCreate(t, s, provider(ns, name))
			want = append(want, p.Key())
		}
	}
	slices.Sort(want)
	list, rev := mustList(t, s)
	var got []string
	for _, p := range list {
		got = append(got, p.Key())
		if p.Revision <= 0 || p.Revision > rev {
			t.Errorf("List() provider %s revision = %d, want in [1, %d] (the list revision)", p.Key(), p.Revision, rev)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List() keys mismatch (-want +got):\n%s", diff)
	}
	for _, p := range list {
		if diff := cmp.Diff(provider(p.Namespace, p.Name), p, sameContent); diff != "" {
			t.Errorf("List() provider %s content mismatch (-want +got):\n%s", p.Key(), diff)
		}
	}
}

// testDeepCopy checks that no map, slice or pointer is shared between the
// store and its callers, in either direction.
func testDeepCopy(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	_, rev := mustList(t, s)
	w1 := mustWatch(ctx, t, s, rev)
	w2 := mustWatch(ctx, t, s, rev)

	in := leased(provider("default", "shared"), registry.MaxLeaseTTL)
	created := mustCreate(t, s, in)
	want := mustGet(t, s, "default", "shared")

	mutate := func(p *registry.Provider) {
		p.Labels["tier"] = "mutated"
		p.Endpoints[0].URL = "http://mutated"
		p.Config["database"] = "mutated"
		p.Secret["password"] = "mutated"
		p.SecretRef.Name = "mutated"
		p.SecretRef.Keys[0] = "mutated"
		p.Scope.Namespaces[0] = "mutated"
		p.Scope.ServiceAccounts[0] = "mutated"
		p.Scope.Workloads[0] = "mutated"
		p.Scope.WorkloadLabels["app"] = "mutated"
		p.Lease.TTL = 1
	}
	check := func(after string) {
		t.Helper()
		got := mustGet(t, s, "default", "shared")
		if diff := cmp.Diff(want, got, sameState); diff != "" {
			t.Errorf("Get() changed after mutating %s (-want +got):\n%s", after, diff)
		}
	}

	mutate(&in)
	check("the provider passed to Create")
	mutate(&created)
	check("the provider Create returned")
	got := mustGet(t, s, "default", "shared")
	mutate(&got)
	check("the provider Get returned")
	list, _ := mustList(t, s)
	mutate(&list[0])
	check("the provider List returned")

	up := mustGet(t, s, "default", "shared")
	up.Version = "16.0.0"
	updated := mustUpdate(t, s, up)
	want = mustGet(t, s, "default", "shared")
	mutate(&up)
	check("the provider passed to Update")
	mutate(&updated)
	check("the provider Update returned")

	// Two watchers get the same events; neither may see the other's
	// mutations, nor change the store.
	e1 := receive(t, w1, 2, c.eventTimeout)
	for i := range e1 {
		mutate(&e1[i].Provider)
	}
	check("the provider of a watch event")
	e2 := receive(t, w2, 2, c.eventTimeout)
	if diff := cmp.Diff(want, e2[1].Provider, sameState); diff != "" {
		t.Errorf("second watcher's Update event changed after the first watcher mutated its own (-want +got):\n%s", diff)
	}
}
