package bolt

import (
	"context"
	"errors"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// sweep deletes expired providers every SweepInterval until Close.
func (s *Store) sweep() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			if err := s.expire(); err != nil && !errors.Is(err, registry.ErrClosed) {
				s.log.Error("expire leases", "err", err)
			}
		}
	}
}

// expire deletes every provider whose lease has passed, each at its own
// revision with a Delete event.
func (s *Store) expire() error {
	now := s.opts.Now()
	s.mu.Lock()
	var due []string
	for key, exp := range s.leases {
		if !exp.After(now) {
			due = append(due, key)
		}
	}
	s.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	var expired []string
	err := s.update(context.Background(), func(t *txn) error {
		expired = expired[:0]
		for _, key := range due {
			// Check again under the write lock: a Renew or Update may have
			// come in since the index was read.
			p, ok, err := t.get(key)
			if err != nil {
				return err
			}
			switch {
			case !ok || p.Lease == nil:
				t.leases[key] = time.Time{}
				continue
			case p.Lease.ExpiresAt.After(now):
				t.leases[key] = p.Lease.ExpiresAt
				continue
			}
			if err := t.delete(key, p); err != nil {
				return err
			}
			expired = append(expired, key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, key := range expired {
		s.log.Info("lease expired; provider deleted", "provider", key)
	}
	return nil
}
