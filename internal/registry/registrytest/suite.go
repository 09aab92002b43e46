package registrytest

import (
	"testing"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// Defaults of the suite's options.
const (
	DefaultLeaseGrace   = 5 * time.Second
	DefaultEventTimeout = 10 * time.Second
)

// Option adapts the suite to one store implementation.
type Option func(*config)

type config struct {
	reopen       func(t *testing.T, closed registry.Store) registry.Store
	leaseGrace   time.Duration
	eventTimeout time.Duration
}

// WithReopen enables the persistence test. The suite closes a store it got
// from newStore, then calls reopen with it; reopen returns a new store over
// the same data (the same file, the same cluster namespace).
func WithReopen(reopen func(t *testing.T, closed registry.Store) registry.Store) Option {
	return func(c *config) { c.reopen = reopen }
}

// WithLeaseGrace sets how long after a lease passes the store may take to
// delete the provider: the suite waits that long for a Delete event, and
// waits that long before checking that a renewed lease did not expire.
// The default is DefaultLeaseGrace; a store that sweeps every 50ms can
// pass 1s to make the suite faster.
func WithLeaseGrace(d time.Duration) Option {
	return func(c *config) { c.leaseGrace = d }
}

// WithEventTimeout sets how long the suite waits for a watch event that
// must come, or for a watch channel that must close. The default is
// DefaultEventTimeout.
func WithEventTimeout(d time.Duration) Option {
	return func(c *config) { c.eventTimeout = d }
}

// Namespaces returns the namespaces the suite puts providers in. A store
// that needs a namespace to exist before it can hold providers there
// creates these in newStore.
func Namespaces() []string {
	return []string{registry.DefaultNamespace, "team-a", "team-b"}
}

// Run runs the conformance suite, each test in its own subtest.
//
// newStore returns a new, empty store that shares no providers with the
// other stores of the run. It closes the store in t.Cleanup; the suite may
// have closed it already, so Close must tolerate a second call. The store
// should sweep expired leases well within the lease grace (see
// WithLeaseGrace).
//
// The lease tests sleep past a lease of one second and run in parallel
// with each other.
func Run(t *testing.T, newStore func(t *testing.T) registry.Store, opts ...Option) {
	c := &config{leaseGrace: DefaultLeaseGrace, eventTimeout: DefaultEventTimeout}
	for _, o := range opts {
		o(c)
	}
	tests := []struct {
		name     string
		parallel bool
		run      func(t *testing.T, c *config, s registry.Store)
	}{
		{name: "CreateGetUpdateDelete", run: testCRUD},
		{name: "CreateExisting", run: testCreateExisting},
		{name: "NotFound", run: testNotFound},
		{name: "UpdateConflict", run: testUpdateConflict},
		{name: "DeleteConflict", run: testDeleteConflict},
		{name: "UnconditionalWrites", run: testUnconditionalWrites},
		{name: "RevisionsIncrease", run: testRevisionsIncrease},
		{name: "ListSorted", run: testListSorted},
		{name: "ListThenWatch", run: testListThenWatch},
		{name: "WatchReplay", run: testWatchReplay},
		{name: "WatchFromZero", run: testWatchFromZero},
		{name: "WatchCancel", run: testWatchCancel},
		{name: "ConcurrentWriters", run: testConcurrentWriters},
		{name: "DeepCopy", run: testDeepCopy},
		{name: "CloseEndsWatches", run: testClose},
		{name: "UpdateRenewsLease", run: testUpdateRenewsLease},
		{name: "LeaseExpiry", parallel: true, run: testLeaseExpiry},
		{name: "LeaseRenew", parallel: true, run: testLeaseRenew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.parallel {
				t.Parallel()
			}
			tt.run(t, c, newStore(t))
		})
	}
	t.Run("Persistence", func(t *testing.T) {
		if c.reopen == nil {
			t.Skip("no WithReopen option: the store cannot be reopened")
		}
		testPersistence(t, c, newStore(t))
	})
}
