package registrytest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

// shortTTL is the shortest lease the registry allows; the lease tests wait
// for it to pass.
const shortTTL = registry.MinLeaseTTL

func testLeaseExpiry(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	static := mustCreate(t, s, provider("default", "static"))
	before := time.Now()
	p := leased(provider("default", "ephemeral"), shortTTL)
	p.Lease.ExpiresAt = before.Add(time.Hour) // the store sets it, not the caller
	created := mustCreate(t, s, p)
	after := time.Now()
	checkLease(t, "Create()", created.Lease, shortTTL, before, after)

	events := mustWatch(ctx, t, s, created.Revision)
	evs := receive(t, events, 1, shortTTL+c.leaseGrace)
	ev := evs[0]
	checkChanges(t, "lease expiry", evs, []change{{registry.Delete, "default/ephemeral", ev.Revision}})
	if ev.Revision <= created.Revision {
		t.Errorf("expiry Delete revision = %d, want > %d", ev.Revision, created.Revision)
	}
	gone := created
	gone.Revision = ev.Revision
	if diff := cmp.Diff(gone, ev.Provider, sameState); diff != "" {
		t.Errorf("expiry Delete event provider mismatch (-want +got):\n%s", diff)
	}
	if _, err := s.Get(ctx, "default", "ephemeral"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get(default/ephemeral) after expiry error = %v, want ErrNotFound", err)
	}
	// A provider without a lease never expires.
	if got := mustGet(t, s, "default", "static"); got.Revision != static.Revision {
		t.Errorf("Get(default/static) revision = %d, want %d: a provider without a lease changed", got.Revision, static.Revision)
	}
}

func testLeaseRenew(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	created := mustCreate(t, s, leased(provider("team-a", "worker"), shortTTL))
	before := time.Now()
	renewed, err := s.Renew(ctx, "team-a", "worker", time.Hour)
	after := time.Now()
	if err != nil {
		t.Fatalf("Renew(team-a/worker, 1h) error = %v, want nil", err)
	}
	checkLease(t, "Renew()", renewed.Lease, time.Hour, before, after)
	if renewed.Revision <= created.Revision {
		t.Errorf("Renew() revision = %d, want > %d", renewed.Revision, created.Revision)
	}
	if diff := cmp.Diff(created, renewed, sameContent, cmp.FilterPath(isLease, cmp.Ignore())); diff != "" {
		t.Errorf("Renew() changed more than the lease (-before +after):\n%s", diff)
	}

	// Outlive the first lease by the grace the store may take to expire it.
	time.Sleep(shortTTL + c.leaseGrace)
	got, err := s.Get(ctx, "team-a", "worker")
	if err != nil {
		t.Fatalf("Get(team-a/worker) after the original lease passed error = %v, want nil: Renew did not keep it alive", err)
	}
	if diff := cmp.Diff(renewed, got, sameState); diff != "" {
		t.Errorf("Get() after Renew mismatch (-want +got):\n%s", diff)
	}
}

func testUpdateRenewsLease(t *testing.T, _ *config, s registry.Store) {
	created := mustCreate(t, s, leased(provider("default", "lessee"), time.Hour))
	next := created
	next.Lease = &registry.Lease{TTL: registry.Duration(2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)}
	before := time.Now()
	updated := mustUpdate(t, s, next)
	after := time.Now()
	checkLease(t, "Update()", updated.Lease, 2*time.Hour, before, after)

	// Dropping the lease in an Update makes the provider permanent.
	next = updated
	next.Lease = nil
	if got := mustUpdate(t, s, next); got.Lease != nil {
		t.Errorf("Update() without a lease = lease %+v, want nil", *got.Lease)
	}
}

func isLease(p cmp.Path) bool {
	sf, ok := p.Last().(cmp.StructField)
	return ok && sf.Name() == "Lease"
}
