package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"go.etcd.io/bbolt"

	"ddi.dev/ddi/internal/registry"
)

// watcher is one Watch call. Its channel is written and closed only under
// Store.mu, so a send never meets a closed channel.
type watcher struct {
	ch   chan registry.Event
	from int64       // deliver only events after this revision
	stop func() bool // unregisters the context callback
}

// Watch streams every event with a revision greater than fromRevision:
// first the history still in the log, then live events, without gaps or
// duplicates. fromRevision 0 means from the first write; it fails with
// registry.ErrCompacted once the log has dropped events, like any other
// revision older than the log.
//
// The channel closes when ctx ends, when the store closes, or when the
// receiver has Options.WatchBuffer live events unread: the events already
// buffered stay readable, and the receiver watches again from the last
// revision it saw.
func (s *Store) Watch(ctx context.Context, fromRevision int64) (<-chan registry.Event, error) {
	if fromRevision < 0 {
		return nil, fmt.Errorf("watch from revision %d: revisions are not negative", fromRevision)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Holding mu while reading the log and registering the watcher means
	// no write commits in between: every event is either in the replay or
	// delivered live.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, registry.ErrClosed
	}
	var replay []registry.Event
	err := s.db.View(func(tx *bbolt.Tx) error {
		if c := getInt(tx.Bucket(bucketMeta), keyCompacted); fromRevision < c {
			return fmt.Errorf("watch from revision %d: the event log starts after revision %d: list again and watch from the list's revision: %w", fromRevision, c, registry.ErrCompacted)
		}
		cur := tx.Bucket(bucketEvents).Cursor()
		for k, v := cur.Seek(revKey(fromRevision + 1)); k != nil; k, v = cur.Next() {
			ev, err := decodeEvent(k, v)
			if err != nil {
				return err
			}
			replay = append(replay, ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	w := &watcher{
		ch:   make(chan registry.Event, len(replay)+s.opts.WatchBuffer),
		from: fromRevision,
	}
	for _, ev := range replay {
		w.ch <- ev
	}
	s.watchers[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.dropWatcher(w)
	})
	return w.ch, nil
}

// broadcast delivers a committed event to every watcher, closing the
// channels of watchers whose buffer is full. The caller holds s.mu.
func (s *Store) broadcast(ev registry.Event) {
	for w := range s.watchers {
		if ev.Revision <= w.from {
			continue
		}
		select {
		case w.ch <- cloneEvent(ev):
		default:
			s.log.Warn("closing the channel of a watcher that fell behind", "revision", ev.Revision, "buffer", cap(w.ch))
			s.dropWatcher(w)
		}
	}
}

// dropWatcher closes w's channel if it is still registered. The caller
// holds s.mu.
func (s *Store) dropWatcher(w *watcher) {
	if _, ok := s.watchers[w]; !ok {
		return
	}
	delete(s.watchers, w)
	close(w.ch)
	w.stop()
}

func decodeEvent(k, v []byte) (registry.Event, error) {
	rev := revOf(k)
	var rec eventRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return registry.Event{}, fmt.Errorf("decode event %d: %w", rev, err)
	}
	ev := registry.Event{Type: rec.Type, Revision: rev}
	if err := json.Unmarshal(rec.Provider, &ev.Provider); err != nil {
		return registry.Event{}, fmt.Errorf("decode event %d: %w", rev, err)
	}
	return ev, nil
}

func cloneEvent(ev registry.Event) registry.Event {
	ev.Provider = clone(ev.Provider)
	return ev
}

// clone returns a deep copy of p: no map, slice or pointer is shared.
func clone(p registry.Provider) registry.Provider {
	p.Labels = maps.Clone(p.Labels)
	p.Endpoints = slices.Clone(p.Endpoints)
	p.Config = maps.Clone(p.Config)
	p.Secret = maps.Clone(p.Secret)
	if p.SecretRef != nil {
		ref := *p.SecretRef
		ref.Keys = slices.Clone(ref.Keys)
		p.SecretRef = &ref
	}
	p.Scope.Namespaces = slices.Clone(p.Scope.Namespaces)
	p.Scope.ServiceAccounts = slices.Clone(p.Scope.ServiceAccounts)
	p.Scope.Workloads = slices.Clone(p.Scope.Workloads)
	p.Scope.WorkloadLabels = maps.Clone(p.Scope.WorkloadLabels)
	if p.Lease != nil {
		l := *p.Lease
		p.Lease = &l
	}
	return p
}
