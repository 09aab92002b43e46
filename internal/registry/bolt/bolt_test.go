package bolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/bolt"
	"ddi.dev/ddi/internal/registry/registrytest"
)

// open opens a store at path with a fast sweeper and closes it when the
// test ends.
func open(t *testing.T, path string, opts bolt.Options) *bolt.Store {
	t.Helper()
	if opts.SweepInterval == 0 {
		opts.SweepInterval = 20 * time.Millisecond
	}
	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s) error = %v, want nil", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() error = %v", err)
		}
	})
	return s
}

func tempPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "state", "registry.db")
}

func TestConformance(t *testing.T) {
	registrytest.Run(t,
		func(t *testing.T) registry.Store { return open(t, tempPath(t), bolt.Options{}) },
		registrytest.WithReopen(func(t *testing.T, closed registry.Store) registry.Store {
			return open(t, closed.(*bolt.Store).Path(), bolt.Options{})
		}),
		// Generous: the default sweep runs every second, and CI runs packages in parallel.
		registrytest.WithLeaseGrace(3*time.Second),
		registrytest.WithEventTimeout(5*time.Second),
	)
}

func TestOpenLocked(t *testing.T) {
	path := tempPath(t)
	open(t, path, bolt.Options{})
	start := time.Now()
	s, err := bolt.Open(path, bolt.Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatalf("Open(%s) while open elsewhere error = nil, want ErrLocked", path)
	}
	if !errors.Is(err, bolt.ErrLocked) {
		t.Errorf("Open(%s) while open elsewhere error = %v, want ErrLocked", path, err)
	}
	if want := "store is locked by another ddi process"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open() error = %q, want it to name %s and say %q", err, path, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open() took %s to give up, want about the 100ms lock timeout", d)
	}
}

func TestOpenNotAStore(t *testing.T) {
	path := tempPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bbolt file\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := bolt.Open(path, bolt.Options{}); err == nil {
		s.Close()
		t.Fatalf("Open(%s) of a text file error = nil, want an error", path)
	}
}

func provider(name string) registry.Provider {
	return registry.Provider{
		Namespace: registry.DefaultNamespace,
		Name:      name,
		Type:      "http",
		Endpoints: []registry.Endpoint{{URL: "http://" + name + ":8080", Ready: true}},
	}
}

func create(t *testing.T, s registry.Store, p registry.Provider) registry.Provider {
	t.Helper()
	got, err := s.Create(t.Context(), p)
	if err != nil {
		t.Fatalf("Create(%s) error = %v, want nil", p.Key(), err)
	}
	return got
}

// receive reads events until n have come or the channel closes.
func receive(t *testing.T, ch <-chan registry.Event, n int) (evs []registry.Event, closed bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for len(evs) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs, true
			}
			evs = append(evs, ev)
		case <-timeout:
			t.Fatalf("received %d of %d events in 5s", len(evs), n)
		}
	}
	return evs, false
}

func revisions(evs []registry.Event) []int64 {
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.Revision)
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for r := from; r <= to; r++ {
		out = append(out, r)
	}
	return out
}

func TestWatchCompacted(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, bolt.Options{MaxEvents: 5})
	for i := range 12 {
		create(t, s, provider(string(rune('a'+i))))
	}
	_, rev, err := s.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		from int64
		want []int64 // nil with wantErr
		err  error
	}{
		{name: "from zero", from: 0, err: registry.ErrCompacted},
		{name: "one before the log", from: rev - 6, err: registry.ErrCompacted},
		{name: "start of the log", from: rev - 5, want: seq(rev-4, rev)},
		{name: "middle of the log", from: rev - 2, want: seq(rev-1, rev)},
		{name: "head", from: rev, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := s.Watch(t.Context(), tt.from)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Watch(%d) error = %v, want %v", tt.from, err, tt.err)
			}
			if err != nil {
				return
			}
			evs, _ := receive(t, ch, len(tt.want))
			if diff := cmp.Diff(tt.want, revisions(evs), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Watch(%d) revisions mismatch (-want +got):\n%s", tt.from, diff)
			}
		})
	}
}

func TestWatchHistorySurvivesReopen(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, bolt.Options{})
	a := create(t, s, provider("a"))
	b := create(t, s, provider("b"))
	if err := s.Delete(t.Context(), "default", "a", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, bolt.Options{})
	ch, err := s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatalf("Watch(0) after reopen error = %v, want nil", err)
	}
	evs, _ := receive(t, ch, 3)
	want := []registry.Event{
		{Type: registry.Put, Provider: a, Revision: 1},
		{Type: registry.Put, Provider: b, Revision: 2},
		{Type: registry.Delete, Provider: a, Revision: 3},
	}
	want[2].Provider.Revision = 3
	if diff := cmp.Diff(want, evs, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Watch(0) after reopen mismatch (-want +got):\n%s", diff)
	}
}

func TestWatchFutureRevision(t *testing.T) {
	s := open(t, tempPath(t), bolt.Options{})
	create(t, s, provider("a"))
	ch, err := s.Watch(t.Context(), 3)
	if err != nil {
		t.Fatalf("Watch(3) at revision 1 error = %v, want nil", err)
	}
	for _, name := range []string{"b", "c", "d", "e"} {
		create(t, s, provider(name))
	}
	evs, _ := receive(t, ch, 2)
	if diff := cmp.Diff([]int64{4, 5}, revisions(evs)); diff != "" {
		t.Errorf("Watch(3) revisions mismatch (-want +got):\n%s", diff)
	}
}

// TestSlowWatcher checks that a watcher that stops reading has its channel
// closed once its buffer is full, keeps what was buffered, and loses
// nothing when it watches again from the last revision it saw.
func TestSlowWatcher(t *testing.T) {
	s := open(t, tempPath(t), bolt.Options{WatchBuffer: 4})
	fast, err := s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var fastEvents []registry.Event
	for i := range 10 {
		create(t, s, provider(string(rune('a'+i))))
		evs, _ := receive(t, fast, 1)
		fastEvents = append(fastEvents, evs...)
	}
	if diff := cmp.Diff(seq(1, 10), revisions(fastEvents)); diff != "" {
		t.Errorf("reading watcher revisions mismatch (-want +got):\n%s", diff)
	}

	got, closed := receive(t, slow, 10)
	if !closed {
		t.Fatalf("slow watcher received %v without its channel closing, want it closed after 4", revisions(got))
	}
	if diff := cmp.Diff(seq(1, 4), revisions(got)); diff != "" {
		t.Errorf("slow watcher revisions before close mismatch (-want +got):\n%s", diff)
	}
	again, err := s.Watch(t.Context(), got[len(got)-1].Revision)
	if err != nil {
		t.Fatalf("Watch(%d) again error = %v, want nil", got[len(got)-1].Revision, err)
	}
	rest, _ := receive(t, again, 6)
	if diff := cmp.Diff(seq(5, 10), revisions(rest)); diff != "" {
		t.Errorf("watch again revisions mismatch (-want +got):\n%s", diff)
	}
}

func TestRenewWithoutLease(t *testing.T) {
	s := open(t, tempPath(t), bolt.Options{})
	p := create(t, s, provider("static"))
	_, err := s.Renew(t.Context(), "default", "static", time.Minute)
	if !errors.Is(err, registry.ErrConflict) {
		t.Errorf("Renew() of a provider without a lease error = %v, want ErrConflict", err)
	}
	got, err := s.Get(t.Context(), "default", "static")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Get() after a refused Renew changed (-want +got):\n%s", diff)
	}
}

// TestLeaseExpiresWhileClosed checks that a lease that passed while no
// process had the store open is swept soon after the next Open.
func TestLeaseExpiresWhileClosed(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, bolt.Options{SweepInterval: time.Hour})
	p := provider("ephemeral")
	p.Lease = &registry.Lease{TTL: registry.Duration(time.Minute)}
	created := create(t, s, p)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	later := func() time.Time { return time.Now().Add(2 * time.Minute) }
	s = open(t, path, bolt.Options{Now: later})
	ch, err := s.Watch(t.Context(), created.Revision)
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := receive(t, ch, 1)
	if len(evs) != 1 || evs[0].Type != registry.Delete || evs[0].Provider.Name != "ephemeral" {
		t.Fatalf("events after reopen = %+v, want the Delete of default/ephemeral", evs)
	}
	if _, err := s.Get(t.Context(), "default", "ephemeral"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get() after expiry error = %v, want ErrNotFound", err)
	}
}

func TestCloseTwice(t *testing.T) {
	s, err := bolt.Open(tempPath(t), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close() call %d error = %v, want nil", i+1, err)
		}
	}
}
