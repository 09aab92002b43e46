package bolt

import (
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"

	"ddi.dev/ddi/internal/registry"
)

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
	return s.hub.Add(ctx, fromRevision, replay), nil
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
