package kube

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/sdk/backoff"
)

// Watch streams every event with a revision greater than fromRevision:
// first those still in the store's event log, then live ones, without gaps
// or duplicates.
//
// The log starts when the store starts (New lists the Providers and
// watches from the list's revision) and keeps the last Options.MaxEvents
// events, so fromRevision must be at least the revision of a List made on
// this store, or of a write or event seen since; an older one, and
// revision 0, fail with registry.ErrCompacted. The log also restarts,
// closing every watch channel, when the API server answers the store's own
// watch with 410 Gone; watching again from the last revision seen then
// fails with registry.ErrCompacted, and the caller lists again.
//
// The channel closes when ctx ends, when the store closes, or when the
// receiver has Options.WatchBuffer live events unread.
func (s *Store) Watch(ctx context.Context, fromRevision int64) (<-chan registry.Event, error) {
	if fromRevision < 0 {
		return nil, fmt.Errorf("watch from revision %d: revisions are not negative", fromRevision)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, registry.ErrClosed
	}
	if fromRevision < s.logStart {
		return nil, fmt.Errorf("watch from revision %d: the store's event log starts after revision %d: list again and watch from the list's revision: %w", fromRevision, s.logStart, registry.ErrCompacted)
	}
	i := sort.Search(len(s.events), func(i int) bool { return s.events[i].Revision > fromRevision })
	return s.hub.Add(ctx, max(fromRevision, s.lastRev), s.events[i:]), nil
}

// resync lists the Providers, rebuilds the lease index, and restarts the
// event log at the list's revision, closing every watch channel (their
// receivers must list again). It returns the list's revision.
func (s *Store) resync(ctx context.Context) (int64, error) {
	objs, rev, err := s.listObjects(ctx)
	if err != nil {
		return 0, fmt.Errorf("kube store: %w", err)
	}
	leases := map[string]leaseEntry{}
	for i := range objs {
		p, err := FromObject(&objs[i])
		if err != nil {
			s.log.Warn("skipping a Provider the store cannot read", "provider", objs[i].Namespace+"/"+objs[i].Name, "err", err)
			continue
		}
		if p.Lease != nil {
			leases[p.Key()] = leaseEntry{expires: p.Lease.ExpiresAt, revision: p.Revision}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leases = leases
	s.events = nil
	s.logStart, s.lastRev = rev, rev
	s.hub.CloseAll()
	return rev, nil
}

// watchLoop feeds the event log from a watch of the API server, starting
// after revision rev, until ctx ends. It watches again from the last
// revision seen (events or bookmarks) when the server ends the watch, and
// resyncs when that revision is gone.
func (s *Store) watchLoop(ctx context.Context, rev int64) {
	// Retries wait 100ms doubling to 5s.
	backoff := &backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		w, err := s.c.Watch(ctx, &v1alpha1.ProviderList{}, &client.ListOptions{
			LabelSelector: s.selector,
			Raw:           &metav1.ListOptions{ResourceVersion: strconv.FormatInt(rev, 10), AllowWatchBookmarks: true},
		})
		gone := false
		if err == nil {
			var seen bool
			rev, gone, seen = s.consume(ctx, w, rev)
			w.Stop()
			if seen {
				backoff.Reset()
			}
		} else {
			gone = apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
			if !gone && ctx.Err() == nil {
				s.log.Warn("watch providers", "revision", rev, "err", err)
			}
		}
		if gone {
			s.log.Warn("the API server no longer has the watch's revision: listing again; watchers must list again", "revision", rev)
			for ctx.Err() == nil {
				r, err := s.resync(ctx)
				if err == nil {
					rev = r
					break
				}
				s.log.Warn("resync providers", "err", err)
				backoff.Wait(ctx)
			}
			continue
		}
		backoff.Wait(ctx)
	}
}

// consume records the events of one watch until it ends. It returns the
// last revision seen, whether the watch ended with 410 Gone, and whether
// it delivered anything.
func (s *Store) consume(ctx context.Context, w watch.Interface, rev int64) (last int64, gone, seen bool) {
	for {
		var (
			ev watch.Event
			ok bool
		)
		select {
		case <-ctx.Done():
			return rev, false, seen
		case ev, ok = <-w.ResultChan():
			if !ok {
				return rev, false, seen
			}
		}
		seen = true
		switch ev.Type {
		case watch.Added, watch.Modified, watch.Deleted:
			obj, ok := ev.Object.(*v1alpha1.Provider)
			if !ok {
				s.log.Warn("unexpected object in the provider watch", "type", fmt.Sprintf("%T", ev.Object))
				continue
			}
			p, err := FromObject(obj)
			if err != nil {
				s.log.Warn("skipping a provider event the store cannot read", "err", err)
				continue
			}
			if p.Secret, err = s.inlineSecret(ctx, obj, ev.Type != watch.Deleted); err != nil {
				s.log.Warn("provider event without its secret material", "provider", p.Key(), "err", err)
			}
			typ := registry.Put
			if ev.Type == watch.Deleted {
				typ = registry.Delete
			}
			s.record(registry.Event{Type: typ, Provider: p, Revision: p.Revision})
			rev = max(rev, p.Revision)
			if ev.Type == watch.Deleted {
				s.forget(obj)
			}
		case watch.Bookmark:
			obj, ok := ev.Object.(metav1.Object)
			if !ok {
				continue
			}
			if r, err := Revision(obj); err == nil {
				s.advance(r)
				rev = max(rev, r)
			}
		case watch.Error:
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				return rev, true, seen
			}
			s.log.Warn("provider watch error", "revision", rev, "err", err)
			return rev, false, seen
		}
	}
}

// record appends an event to the log, updates the lease index, and
// delivers the event to the watchers. Events at or before the last
// revision seen are dropped: each is recorded once.
func (s *Store) record(ev registry.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.Revision <= s.lastRev {
		return
	}
	s.lastRev = ev.Revision
	s.events = append(s.events, ev)
	if n := len(s.events); n > s.opts.MaxEvents {
		// Trim in batches, so that appends stay cheap.
		drop := n - s.opts.MaxEvents*3/4
		s.logStart = s.events[drop-1].Revision
		s.events = append(s.events[:0:0], s.events[drop:]...)
	}
	key := ev.Provider.Key()
	if ev.Type == registry.Put && ev.Provider.Lease != nil {
		s.leases[key] = leaseEntry{expires: ev.Provider.Lease.ExpiresAt, revision: ev.Revision}
	} else {
		delete(s.leases, key)
	}
	s.hub.Publish(ev)
}

// advance notes a bookmark: no change up to rev.
func (s *Store) advance(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastRev = max(s.lastRev, rev)
}
