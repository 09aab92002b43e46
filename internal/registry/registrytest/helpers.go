package registrytest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ddi.dev/ddi/internal/registry"
)

// clockSlack absorbs stores that keep lease times at second precision
// (Kubernetes' metav1.Time) and clocks read on either side of a call.
const clockSlack = time.Second

// quiet is how long the suite listens for events that must not come.
const quiet = 300 * time.Millisecond

// sameContent compares providers as stored, ignoring what the store sets:
// the revision and the lease expiry. Nil and empty maps and slices are
// equal, since stores may encode providers.
var sameContent = cmp.Options{
	cmpopts.EquateEmpty(),
	cmpopts.IgnoreFields(registry.Provider{}, "Revision"),
	cmpopts.IgnoreFields(registry.Lease{}, "ExpiresAt"),
}

// sameState compares providers exactly, but for nil and empty.
var sameState = cmp.Options{cmpopts.EquateEmpty()}

// provider returns a provider with every field set, so that round trips
// and deep copies are tested on all of them.
func provider(namespace, name string) registry.Provider {
	return registry.Provider{
		Namespace: namespace,
		Name:      name,
		Type:      "postgresql",
		Version:   "15.2.0",
		Labels:    map[string]string{"tier": "gold", "region": "eu"},
		Endpoints: []registry.Endpoint{
			{URL: "postgres://" + name + "." + namespace + ":5432/app", Ready: true},
			{URL: "postgres://" + name + "-replica." + namespace + ":5432/app", Ready: false},
		},
		Config:    map[string]string{"database": "app", "sslmode": "require"},
		Secret:    map[string]string{"username": "app", "password": "s3cret"},
		SecretRef: &registry.SecretRef{Name: name + "-credentials", Keys: []string{"username", "password"}},
		Scope: registry.Scope{
			Namespaces:      []string{namespace, "team-b"},
			ServiceAccounts: []string{"checkout"},
			Workloads:       []string{"checkout", "billing"},
			WorkloadLabels:  map[string]string{"app": "shop"},
		},
		Owner: "registrytest",
	}
}

// leased returns p with a lease of ttl.
func leased(p registry.Provider, ttl time.Duration) registry.Provider {
	p.Lease = &registry.Lease{TTL: registry.Duration(ttl)}
	return p
}

func mustCreate(t *testing.T, s registry.Store, p registry.Provider) registry.Provider {
	t.Helper()
	got, err := s.Create(t.Context(), p)
	if err != nil {
		t.Fatalf("Create(%s) error = %v, want nil", p.Key(), err)
	}
	if got.Revision <= 0 {
		t.Fatalf("Create(%s) revision = %d, want > 0", p.Key(), got.Revision)
	}
	return got
}

func mustUpdate(t *testing.T, s registry.Store, p registry.Provider) registry.Provider {
	t.Helper()
	got, err := s.Update(t.Context(), p)
	if err != nil {
		t.Fatalf("Update(%s at revision %d) error = %v, want nil", p.Key(), p.Revision, err)
	}
	return got
}

func mustGet(t *testing.T, s registry.Store, namespace, name string) registry.Provider {
	t.Helper()
	got, err := s.Get(t.Context(), namespace, name)
	if err != nil {
		t.Fatalf("Get(%s) error = %v, want nil", registry.Key(namespace, name), err)
	}
	return got
}

func mustList(t *testing.T, s registry.Store) ([]registry.Provider, int64) {
	t.Helper()
	list, rev, err := s.List(t.Context())
	if err != nil {
		t.Fatalf("List() error = %v, want nil", err)
	}
	return list, rev
}

func mustWatch(ctx context.Context, t *testing.T, s registry.Store, from int64) <-chan registry.Event {
	t.Helper()
	ch, err := s.Watch(ctx, from)
	if err != nil {
		t.Fatalf("Watch(%d) error = %v, want nil", from, err)
	}
	return ch
}

// change is an event without the provider's content: what happened to
// which key at which revision.
type change struct {
	Type     registry.EventType
	Key      string
	Revision int64
}

func (c change) String() string { return fmt.Sprintf("%s %s @%d", c.Type, c.Key, c.Revision) }

func changeOf(ev registry.Event) change {
	return change{Type: ev.Type, Key: ev.Provider.Key(), Revision: ev.Revision}
}

func changes(evs []registry.Event) []change {
	out := make([]change, len(evs))
	for i, ev := range evs {
		out[i] = changeOf(ev)
	}
	return out
}

// receive reads n events from ch; it fails if ch closes or the events do
// not come within timeout.
func receive(t *testing.T, ch <-chan registry.Event, n int, timeout time.Duration) []registry.Event {
	t.Helper()
	var evs []registry.Event
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(evs) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch channel closed after %d of %d events %v", len(evs), n, changes(evs))
			}
			evs = append(evs, ev)
		case <-deadline.C:
			t.Fatalf("received %d of %d events %v within %s", len(evs), n, changes(evs), timeout)
		}
	}
	return evs
}

// expectQuiet fails if an event arrives on ch within quiet.
func expectQuiet(t *testing.T, ch <-chan registry.Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("unexpected event %v: each change must be delivered once", changeOf(ev))
		}
	case <-time.After(quiet):
	}
}

// expectClosed reads ch until it closes; it fails if that takes longer
// than timeout.
func expectClosed(t *testing.T, ch <-chan registry.Event, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline.C:
			t.Fatalf("watch channel still open after %s", timeout)
		}
	}
}

// checkChanges compares received events with the wanted changes.
func checkChanges(t *testing.T, what string, got []registry.Event, want []change) {
	t.Helper()
	if diff := cmp.Diff(want, changes(got)); diff != "" {
		t.Errorf("%s events mismatch (-want +got):\n%s", what, diff)
	}
}

// checkLease checks that a lease of ttl was set between before and after.
func checkLease(t *testing.T, what string, l *registry.Lease, ttl time.Duration, before, after time.Time) {
	t.Helper()
	if l == nil {
		t.Fatalf("%s lease = nil, want a lease of %s", what, ttl)
	}
	if got := time.Duration(l.TTL); got != ttl {
		t.Errorf("%s lease TTL = %s, want %s", what, got, ttl)
	}
	lo, hi := before.Add(ttl-clockSlack), after.Add(ttl+clockSlack)
	if l.ExpiresAt.Before(lo) || l.ExpiresAt.After(hi) {
		t.Errorf("%s lease expires at %s, want now + %s (between %s and %s)", what, l.ExpiresAt.Format(time.RFC3339Nano), ttl, lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano))
	}
}

// follower records every event after a revision, watching again whenever
// the store closes its channel early (as it may for a slow receiver).
type follower struct {
	mu     sync.Mutex
	events []registry.Event
	last   int64
	err    error
	done   chan struct{}
}

func follow(t *testing.T, s registry.Store, from int64) *follower {
	t.Helper()
	ctx := t.Context()
	ch := mustWatch(ctx, t, s, from)
	f := &follower{last: from, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			for ev := range ch {
				f.mu.Lock()
				f.events = append(f.events, ev)
				f.last = ev.Revision
				f.mu.Unlock()
			}
			if ctx.Err() != nil {
				return
			}
			f.mu.Lock()
			last := f.last
			f.mu.Unlock()
			var err error
			if ch, err = s.Watch(ctx, last); err != nil {
				f.mu.Lock()
				f.err = fmt.Errorf("watch again from revision %d: %w", last, err)
				f.mu.Unlock()
				return
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-f.done:
		case <-time.After(DefaultEventTimeout):
			t.Errorf("watch channel still open %s after the test's context ended", DefaultEventTimeout)
		}
	})
	return f
}

// waitFor returns the events recorded once one at or after rev has come.
func (f *follower) waitFor(t *testing.T, rev int64, timeout time.Duration) []registry.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f.mu.Lock()
		last, err, evs := f.last, f.err, append([]registry.Event(nil), f.events...)
		f.mu.Unlock()
		if err != nil {
			t.Fatalf("follow watch: %v", err)
		}
		if last >= rev {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch reached revision %d after %s, want %d", last, timeout, rev)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
