package ddi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"ddi.dev/ddi/sdk/backoff"
)

// cache is the Client's in-memory copy of the function's bindings, kept
// current by the watch that Start runs.
type cache struct {
	state atomic.Pointer[cacheState]

	mu      sync.Mutex
	run     *cacheRun // the running watch, nil when none
	subs    map[int]func(name string, b *Binding)
	nextSub int
}

// cacheState is an immutable snapshot of the cache; updates replace it.
type cacheState struct {
	bindings   map[string]*Binding
	unresolved map[string]Unresolved
	version    int64
	live       bool // a watch keeps it current
}

// cacheRun is one Start: its first sync's outcome.
type cacheRun struct {
	synced chan struct{} // closed after the first attempt to sync
	err    error         // that attempt's error, set before synced closes
}

// missing explains why name has no binding in the cache.
func (st *cacheState) missing(name string) error {
	if u, ok := st.unresolved[name]; ok {
		return &Problem{
			Type:       ProblemBase + KindUnresolved,
			Title:      "Dependency unresolved",
			Status:     http.StatusNotFound,
			Detail:     fmt.Sprintf("dependency %q (selector %q) is unresolved: %s", name, u.Selector, u.Reason),
			Dependency: name,
			Selector:   u.Selector,
		}
	}
	return &Problem{
		Type:       ProblemBase + KindUnknownDependency,
		Title:      "Unknown dependency",
		Status:     http.StatusNotFound,
		Detail:     fmt.Sprintf("dependency %q is not declared by this function", name),
		Dependency: name,
	}
}

// Start keeps a local copy of the function's bindings current through a
// background watch of the sidecar that runs until ctx ends. It returns once
// the first snapshot is loaded (from then on Resolve answers from memory in
// well under a microsecond, without allocating) or when the first attempt
// fails; after a failure the watch keeps retrying in the background and the
// cache fills as soon as the sidecar answers. Calling Start while a watch
// runs just waits for its first snapshot.
//
// When ctx ends the watch stops and Resolve asks the sidecar again.
func (c *Client) Start(ctx context.Context) error {
	if err := c.init(); err != nil {
		return err
	}
	run := c.startCache(ctx)
	select {
	case <-run.synced:
		return run.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startCache starts the watch unless one runs, and returns it.
func (c *Client) startCache(ctx context.Context) *cacheRun {
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	if c.cache.run == nil {
		c.cache.run = &cacheRun{synced: make(chan struct{})}
		go c.keepCache(ctx, c.cache.run)
	}
	return c.cache.run
}

// keepCache is the watch goroutine of one Start; it ends with ctx.
func (c *Client) keepCache(ctx context.Context, run *cacheRun) {
	first := true
	signal := func(err error) {
		if first {
			first = false
			run.err = err
			close(run.synced)
		}
	}
	// Reconnects wait 50ms doubling to 2s.
	b := &backoff.Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}
	for ctx.Err() == nil {
		err := c.syncOnce(ctx, func() { b.Reset(); signal(nil) })
		signal(err)
		if !b.Wait(ctx) {
			break
		}
	}
	signal(ctx.Err())

	c.cache.mu.Lock()
	c.cache.run = nil
	if st := c.cache.state.Load(); st != nil {
		stale := *st
		stale.live = false
		c.cache.state.Store(&stale)
	}
	c.cache.mu.Unlock()
}

// headerWait bounds how long syncOnce waits for the watch stream's headers
// before it loads the snapshot anyway.
const headerWait = time.Second

// syncOnce opens the watch stream, loads the full snapshot, calls synced,
// then applies events until the stream ends.
func (c *Client) syncOnce(ctx context.Context, synced func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Open the stream first so that no change made after the snapshot
	// below is missed; the events that describe older state are applied
	// too, in order, so the cache converges on the newest.
	type opened struct {
		body io.ReadCloser
		err  error
	}
	openc := make(chan opened, 1)
	go func() {
		body, err := c.openWatch(ctx)
		openc <- opened{body, err}
	}()
	var stream *opened
	select {
	case o := <-openc:
		stream = &o
	case <-time.After(headerWait):
	}
	if stream != nil && stream.err != nil {
		return stream.err
	}

	snap, err := c.Bindings(ctx)
	if err != nil {
		if stream != nil {
			stream.body.Close()
		}
		return err
	}
	c.replaceState(snap)
	synced()

	if stream == nil {
		o := <-openc
		if o.err != nil {
			return o.err
		}
		stream = &o
	}
	defer stream.body.Close()
	return readEvents(ctx, stream.body, c.applyEvent)
}

// replaceState installs a full snapshot and tells subscribers what changed.
func (c *Client) replaceState(snap Snapshot) {
	st := &cacheState{
		bindings:   make(map[string]*Binding, len(snap.Bindings)),
		unresolved: make(map[string]Unresolved, len(snap.Unresolved)),
		version:    snap.Version,
		live:       true,
	}
	for i := range snap.Bindings {
		b := snap.Bindings[i]
		st.bindings[b.Name] = &b
	}
	for _, u := range snap.Unresolved {
		st.unresolved[u.Name] = u
	}
	c.cache.mu.Lock()
	old := c.cache.state.Load()
	c.cache.state.Store(st)
	subs := c.subscribers()
	c.cache.mu.Unlock()

	for name, b := range st.bindings {
		if old == nil || changed(old.bindings[name], b) {
			notify(subs, name, b)
		}
	}
	if old != nil {
		for name := range old.bindings {
			if _, ok := st.bindings[name]; !ok {
				notify(subs, name, nil)
			}
		}
	}
}

// applyEvent updates the cache with one watch event.
func (c *Client) applyEvent(ev Event) {
	c.cache.mu.Lock()
	old := c.cache.state.Load()
	st := &cacheState{
		bindings:   make(map[string]*Binding, len(old.bindings)+1),
		unresolved: make(map[string]Unresolved, len(old.unresolved)),
		version:    old.version,
		live:       true,
	}
	for k, v := range old.bindings {
		st.bindings[k] = v
	}
	for k, v := range old.unresolved {
		st.unresolved[k] = v
	}
	var nb *Binding
	switch ev.Kind {
	case EventBinding:
		b := ev.Binding
		nb = &b
		st.bindings[ev.Name] = nb
		delete(st.unresolved, ev.Name)
	case EventUnbound:
		delete(st.bindings, ev.Name)
		st.unresolved[ev.Name] = ev.Unresolved
	}
	was := old.bindings[ev.Name]
	c.cache.state.Store(st)
	subs := c.subscribers()
	c.cache.mu.Unlock()

	if changed(was, nb) {
		notify(subs, ev.Name, nb)
	}
}

func changed(old, cur *Binding) bool {
	if old == nil || cur == nil {
		return old != cur
	}
	return old.Revision != cur.Revision || old.Provider != cur.Provider
}

// subscribers copies the subscriber list; c.cache.mu must be held.
func (c *Client) subscribers() []func(string, *Binding) {
	out := make([]func(string, *Binding), 0, len(c.cache.subs))
	for _, fn := range c.cache.subs {
		out = append(out, fn)
	}
	return out
}

func notify(subs []func(string, *Binding), name string, b *Binding) {
	for _, fn := range subs {
		fn(name, b)
	}
}

// subscribe registers fn to be called, on the watch goroutine, after every
// change of the cache; it returns a function that unregisters it.
func (c *Client) subscribe(fn func(name string, b *Binding)) func() {
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	if c.cache.subs == nil {
		c.cache.subs = map[int]func(string, *Binding){}
	}
	id := c.cache.nextSub
	c.cache.nextSub++
	c.cache.subs[id] = fn
	return func() {
		c.cache.mu.Lock()
		defer c.cache.mu.Unlock()
		delete(c.cache.subs, id)
	}
}

// cached returns the cache's binding for name, whether or not a watch keeps
// it current, and whether the cache knows the name at all.
func (c *Client) cached(name string) (*Binding, *cacheState) {
	st := c.cache.state.Load()
	if st == nil {
		return nil, nil
	}
	return st.bindings[name], st
}
