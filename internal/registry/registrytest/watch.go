package registrytest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

func testListThenWatch(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	mustCreate(t, s, provider("default", "a"))
	mustCreate(t, s, provider("team-a", "b"))
	_, rev := mustList(t, s)
	// A write between List and Watch must not be lost.
	between := mustCreate(t, s, provider("team-b", "c"))
	events := mustWatch(ctx, t, s, rev)
	after := mustCreate(t, s, provider("default", "d"))
	evs := receive(t, events, 2, c.eventTimeout)
	checkChanges(t, fmt.Sprintf("Watch(%d) from the List revision", rev), evs, []change{
		{registry.Put, "team-b/c", between.Revision},
		{registry.Put, "default/d", after.Revision},
	})
	expectQuiet(t, events)
}

func testWatchReplay(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	a1 := mustCreate(t, s, provider("default", "a"))
	b1 := mustCreate(t, s, provider("team-a", "b"))
	a2 := a1
	a2.Config = map[string]string{"database": "orders"}
	a2 = mustUpdate(t, s, a2)
	if err := s.Delete(ctx, "team-a", "b", b1.Revision); err != nil {
		t.Fatalf("Delete(team-a/b) error = %v, want nil", err)
	}
	c1 := mustCreate(t, s, provider("team-b", "c"))

	events := mustWatch(ctx, t, s, b1.Revision)
	replay := receive(t, events, 3, c.eventTimeout)
	deleteRev := replay[1].Revision
	checkChanges(t, fmt.Sprintf("Watch(%d) replay", b1.Revision), replay, []change{
		{registry.Put, "default/a", a2.Revision},
		{registry.Delete, "team-a/b", deleteRev},
		{registry.Put, "team-b/c", c1.Revision},
	})
	if deleteRev <= a2.Revision || deleteRev >= c1.Revision {
		t.Errorf("Delete(team-a/b) revision = %d, want between %d and %d", deleteRev, a2.Revision, c1.Revision)
	}
	if diff := cmp.Diff(a2, replay[0].Provider, sameState); diff != "" {
		t.Errorf("replayed Put event provider mismatch (-want +got):\n%s", diff)
	}
	// A Delete event carries the last state, at the delete's revision.
	gone := b1
	gone.Revision = deleteRev
	if diff := cmp.Diff(gone, replay[1].Provider, sameState); diff != "" {
		t.Errorf("replayed Delete event provider mismatch (-want +got):\n%s", diff)
	}

	// A second watcher from the current revision sees only live events.
	live := mustWatch(ctx, t, s, c1.Revision)
	c2 := mustUpdate(t, s, c1)
	if err := s.Delete(ctx, "default", "a", 0); err != nil {
		t.Fatalf("Delete(default/a) error = %v, want nil", err)
	}
	a3 := mustCreate(t, s, provider("default", "a"))
	for _, ch := range []<-chan registry.Event{events, live} {
		evs := receive(t, ch, 3, c.eventTimeout)
		checkChanges(t, "live", evs, []change{
			{registry.Put, "team-b/c", c2.Revision},
			{registry.Delete, "default/a", evs[1].Revision},
			{registry.Put, "default/a", a3.Revision},
		})
		if r := evs[1].Revision; r <= c2.Revision || r >= a3.Revision {
			t.Errorf("Delete(default/a) revision = %d, want between %d and %d", r, c2.Revision, a3.Revision)
		}
	}
	expectQuiet(t, events)
	expectQuiet(t, live)
}

// testWatchFromZero checks that revision 0 means "from the first write".
// A store whose log no longer reaches back that far returns ErrCompacted
// instead, as for any revision older than its log.
func testWatchFromZero(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, provider("default", "a"))
	b := mustCreate(t, s, provider("team-a", "b"))
	a2 := mustUpdate(t, s, a)
	events, err := s.Watch(ctx, 0)
	if errors.Is(err, registry.ErrCompacted) {
		t.Logf("Watch(0) = ErrCompacted: the store does not keep its log from the first write")
		return
	}
	if err != nil {
		t.Fatalf("Watch(0) error = %v, want nil or ErrCompacted", err)
	}
	evs := receive(t, events, 3, c.eventTimeout)
	checkChanges(t, "Watch(0)", evs, []change{
		{registry.Put, "default/a", a.Revision},
		{registry.Put, "team-a/b", b.Revision},
		{registry.Put, "default/a", a2.Revision},
	})
	expectQuiet(t, events)
}

func testWatchCancel(t *testing.T, c *config, s registry.Store) {
	_, rev := mustList(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	events := mustWatch(ctx, t, s, rev)
	other := mustWatch(t.Context(), t, s, rev)
	cancel()
	expectClosed(t, events, c.eventTimeout)
	// The store and other watchers carry on.
	p := mustCreate(t, s, provider("default", "after-cancel"))
	evs := receive(t, other, 1, c.eventTimeout)
	checkChanges(t, "other watcher", evs, []change{{registry.Put, p.Key(), p.Revision}})
}

// testConcurrentWriters runs writers that increment one counter with
// optimistic concurrency. No increment may be lost, and a watcher must see
// every successful write exactly once, in order.
func testConcurrentWriters(t *testing.T, c *config, s registry.Store) {
	const (
		writers     = 8
		updates     = 50
		maxAttempts = 10000
	)
	ctx := t.Context()
	counter := provider("default", "counter")
	counter.Config = map[string]string{"count": "0"}
	created := mustCreate(t, s, counter)
	f := follow(t, s, created.Revision)

	var (
		mu     sync.Mutex
		writes = map[int64]string{} // revision -> count written
	)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for range updates {
				attempts := 0
				for {
					if attempts++; attempts > maxAttempts {
						errs <- fmt.Errorf("writer %d: %d conflicts in a row", w, maxAttempts)
						return
					}
					cur, err := s.Get(ctx, "default", "counter")
					if err != nil {
						errs <- fmt.Errorf("writer %d: Get() error = %v", w, err)
						return
					}
					n, err := strconv.Atoi(cur.Config["count"])
					if err != nil {
						errs <- fmt.Errorf("writer %d: stored count %q: %v", w, cur.Config["count"], err)
						return
					}
					cur.Config["count"] = strconv.Itoa(n + 1)
					cur.Config["writer"] = strconv.Itoa(w)
					got, err := s.Update(ctx, cur)
					if errors.Is(err, registry.ErrConflict) {
						continue
					}
					if err != nil {
						errs <- fmt.Errorf("writer %d: Update() error = %v", w, err)
						return
					}
					mu.Lock()
					writes[got.Revision] = got.Config["count"]
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	final := mustGet(t, s, "default", "counter")
	if got, want := final.Config["count"], strconv.Itoa(writers*updates); got != want {
		t.Errorf("final count = %s, want %s: increments were lost", got, want)
	}
	if len(writes) != writers*updates {
		t.Errorf("%d successful writes had distinct revisions, want %d", len(writes), writers*updates)
	}
	counts := map[string]bool{}
	for _, n := range writes {
		counts[n] = true
	}
	for i := 1; i <= writers*updates; i++ {
		if !counts[strconv.Itoa(i)] {
			t.Errorf("no successful write stored count %d", i)
		}
	}

	evs := f.waitFor(t, final.Revision, c.eventTimeout)
	seen := map[int64]string{}
	prev := created.Revision
	for _, ev := range evs {
		if ev.Revision <= prev {
			t.Errorf("watch event at revision %d after revision %d: want strictly increasing", ev.Revision, prev)
		}
		prev = ev.Revision
		if ev.Type != registry.Put || ev.Provider.Key() != "default/counter" {
			t.Errorf("unexpected watch event %v", changeOf(ev))
			continue
		}
		if _, dup := seen[ev.Revision]; dup {
			t.Errorf("watch event at revision %d delivered twice", ev.Revision)
		}
		seen[ev.Revision] = ev.Provider.Config["count"]
	}
	if diff := cmp.Diff(writes, seen); diff != "" {
		t.Errorf("watched writes mismatch, revision -> count (-successful writes +watched):\n%s", diff)
	}
}

func testClose(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	_, rev := mustList(t, s)
	first := mustWatch(ctx, t, s, rev)
	p := mustCreate(t, s, provider("default", "a"))
	receive(t, first, 1, c.eventTimeout)
	second := mustWatch(ctx, t, s, p.Revision)
	if err := s.Close(); err != nil {
		t.Fatalf("Close() error = %v, want nil", err)
	}
	expectClosed(t, first, c.eventTimeout)
	expectClosed(t, second, c.eventTimeout)

	if _, err := s.Get(ctx, "default", "a"); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Get() after Close error = %v, want ErrClosed", err)
	}
	if _, _, err := s.List(ctx); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("List() after Close error = %v, want ErrClosed", err)
	}
	if _, err := s.Create(ctx, provider("default", "b")); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Create() after Close error = %v, want ErrClosed", err)
	}
	if err := s.Delete(ctx, "default", "a", 0); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Delete() after Close error = %v, want ErrClosed", err)
	}
	if _, err := s.Watch(ctx, p.Revision); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Watch() after Close error = %v, want ErrClosed", err)
	}
}

func testPersistence(t *testing.T, c *config, s registry.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, provider("default", "a"))
	mustCreate(t, s, leased(provider("team-a", "b"), registry.MaxLeaseTTL))
	mustCreate(t, s, provider("team-b", "c"))
	a.Version = "16.0.0"
	mustUpdate(t, s, a)
	if err := s.Delete(ctx, "team-b", "c", 0); err != nil {
		t.Fatalf("Delete(team-b/c) error = %v, want nil", err)
	}
	before, rev := mustList(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close() error = %v, want nil", err)
	}

	s = c.reopen(t, s)
	after, rev2 := mustList(t, s)
	if diff := cmp.Diff(before, after, sameState); diff != "" {
		t.Errorf("List() after reopen mismatch (-before +after):\n%s", diff)
	}
	if rev2 < rev {
		t.Errorf("List() revision after reopen = %d, want >= %d: revisions must not go back", rev2, rev)
	}
	events := mustWatch(ctx, t, s, rev2)
	d := mustCreate(t, s, provider("team-b", "d"))
	if d.Revision <= rev2 {
		t.Errorf("Create() after reopen revision = %d, want > %d", d.Revision, rev2)
	}
	evs := receive(t, events, 1, c.eventTimeout)
	checkChanges(t, "Watch after reopen", evs, []change{{registry.Put, "team-b/d", d.Revision}})
}
