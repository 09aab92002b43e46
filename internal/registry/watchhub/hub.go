package watchhub

import (
	"context"
	"log/slog"
	"sync"

	"ddi.dev/ddi/internal/registry"
)

// Hub is the set of a store's watchers. Its methods are safe for
// concurrent use.
//
// The store must call Add and Publish under one lock of its own, the one
// that orders its writes: a watcher then sees every event either in the
// replay it was added with or from Publish, never both and never neither.
type Hub struct {
	buffer int
	log    *slog.Logger

	// mu guards watchers. A channel is written and closed only under mu,
	// so a send never meets a closed channel.
	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

// watcher is one Watch call.
type watcher struct {
	ch   chan registry.Event
	from int64       // deliver only events after this revision
	stop func() bool // unregisters the context callback
}

// New returns a Hub whose watchers may each have buffer live events
// unread before their channel closes. It logs the watchers it closes for
// falling behind to log.
func New(buffer int, log *slog.Logger) *Hub {
	return &Hub{buffer: buffer, log: log, watchers: map[*watcher]struct{}{}}
}

// Add registers a watcher and returns its channel, holding a copy of each
// event of replay and room for the Hub's buffer of live events. The
// watcher then receives a copy of every published event with a revision
// greater than from. Its channel closes when ctx ends, when a published
// event finds the buffer full, or at CloseAll.
func (h *Hub) Add(ctx context.Context, from int64, replay []registry.Event) <-chan registry.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := &watcher{
		ch:   make(chan registry.Event, len(replay)+h.buffer),
		from: from,
	}
	for _, ev := range replay {
		w.ch <- clone(ev)
	}
	h.watchers[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.drop(w)
	})
	return w.ch
}

// Publish delivers a copy of ev to every watcher that wants it, closing
// the channels of watchers whose buffer is full: the events already
// buffered stay readable, and the receiver watches again from the last
// revision it saw.
func (h *Hub) Publish(ev registry.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		if ev.Revision <= w.from {
			continue
		}
		select {
		case w.ch <- clone(ev):
		default:
			h.log.Warn("closing the channel of a watcher that fell behind", "revision", ev.Revision, "buffer", cap(w.ch))
			h.drop(w)
		}
	}
}

// CloseAll closes the channel of every watcher. Watchers added later are
// served as usual.
func (h *Hub) CloseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		h.drop(w)
	}
}

// drop closes w's channel if it is still registered. The caller holds
// h.mu.
func (h *Hub) drop(w *watcher) {
	if _, ok := h.watchers[w]; !ok {
		return
	}
	delete(h.watchers, w)
	close(w.ch)
	w.stop()
}

func clone(ev registry.Event) registry.Event {
	ev.Provider = ev.Provider.Clone()
	return ev
}
