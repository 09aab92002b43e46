package ddi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"ddi.dev/ddi/sdk/backoff"
)

// Event kinds sent by the sidecar's /v1/watch stream.
const (
	// EventBinding says a dependency is bound, or its binding changed.
	EventBinding = "binding"
	// EventUnbound says a dependency lost its provider.
	EventUnbound = "unbound"
)

// Event is one change of one of the function's bindings.
type Event struct {
	// Kind is EventBinding or EventUnbound.
	Kind string
	// Name is the dependency's alias.
	Name string
	// Binding is the new binding (EventBinding only).
	Binding Binding
	// Unresolved says why the dependency has no provider (EventUnbound
	// only).
	Unresolved Unresolved
}

// idleTimeout ends a watch stream that sent nothing, not even its 15 s
// keepalive, for this long; the watch then reconnects.
const idleTimeout = 45 * time.Second

// maxEventBytes bounds one server-sent event.
const maxEventBytes = 4 << 20

// Watch streams changes of one dependency (name) or of all of them (name
// ""). The first events describe the current bindings; then one event comes
// per change. The watch reconnects by itself when the sidecar restarts and
// does not repeat an event it already delivered. The channel is closed when
// ctx ends. An unknown dependency or an unreachable sidecar is an error.
func (c *Client) Watch(ctx context.Context, name string) (<-chan Event, error) {
	w, err := c.startWatch(ctx, name)
	if err != nil {
		return nil, err
	}
	ch := make(chan Event, 16)
	go func() {
		defer close(ch)
		w.run(ctx, func(ev Event) {
			select {
			case ch <- ev:
			case <-ctx.Done():
			}
		})
	}()
	return ch, nil
}

// WatchFunc calls fn for every change of one dependency (name) or of all of
// them (name ""), like Watch, until ctx ends; then it returns nil. fn runs
// on WatchFunc's goroutine, one event at a time. An unknown dependency or an
// unreachable sidecar is an error returned at once.
func (c *Client) WatchFunc(ctx context.Context, name string, fn func(Event)) error {
	w, err := c.startWatch(ctx, name)
	if err != nil {
		return err
	}
	w.run(ctx, fn)
	return nil
}

// watcher is one Watch call: its open stream and what it delivered.
type watcher struct {
	c    *Client
	name string
	body io.ReadCloser
	seen map[string]int64 // name -> revision delivered; -1 after unbound
}

func (c *Client) startWatch(ctx context.Context, name string) (*watcher, error) {
	if name != "" {
		// An unresolved dependency is fine to watch (it may get a
		// provider); one the function never declared is not.
		if _, err := c.fetch(ctx, name); err != nil {
			var p *Problem
			if !errors.As(err, &p) || p.Kind() != KindUnresolved {
				return nil, err
			}
		}
	}
	body, err := c.openWatch(ctx)
	if err != nil {
		return nil, err
	}
	return &watcher{c: c, name: name, body: body, seen: map[string]int64{}}, nil
}

func (w *watcher) run(ctx context.Context, fn func(Event)) {
	// Reconnects wait 50ms doubling to 2s.
	backoff := &backoff.Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}
	for {
		if w.body != nil {
			_ = readEvents(ctx, w.body, func(ev Event) {
				if w.name != "" && ev.Name != w.name {
					return
				}
				rev := int64(-1)
				if ev.Kind == EventBinding {
					rev = ev.Binding.Revision
				}
				if last, ok := w.seen[ev.Name]; ok && last == rev {
					return // repeated by a reconnect
				}
				w.seen[ev.Name] = rev
				backoff.Reset()
				fn(ev)
			})
			w.body.Close()
			w.body = nil
		}
		if !backoff.Wait(ctx) {
			return
		}
		body, err := w.c.openWatch(ctx)
		if err == nil {
			w.body = body
		}
	}
}

// openWatch connects to /v1/watch and returns the event stream once the
// sidecar has sent the response headers.
func (c *Client) openWatch(ctx context.Context) (io.ReadCloser, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/watch", nil)
	if err != nil {
		return nil, fmt.Errorf("ddi: watch: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ddi: sidecar at %s: watch: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, problemFrom(resp)
	}
	return resp.Body, nil
}

// readEvents parses server-sent events from r and calls fn for each
// binding or unbound event, until the stream ends, fails, stays silent for
// idleTimeout, or ctx ends.
func readEvents(ctx context.Context, r io.ReadCloser, fn func(Event)) error {
	idle := time.AfterFunc(idleTimeout, func() { r.Close() })
	defer idle.Stop()
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventBytes)
	var kind string
	var data strings.Builder
	for sc.Scan() {
		idle.Reset(idleTimeout)
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() > 0 {
				if ev, ok := decodeEvent(kind, data.String()); ok {
					fn(ev)
				}
			}
			kind = ""
			data.Reset()
		case strings.HasPrefix(line, ":"):
			// comment (keepalive)
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				kind = value
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(value)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

func decodeEvent(kind, data string) (Event, bool) {
	switch kind {
	case EventBinding, "":
		var b Binding
		if err := json.Unmarshal([]byte(data), &b); err != nil || b.Name == "" {
			return Event{}, false
		}
		return Event{Kind: EventBinding, Name: b.Name, Binding: b}, true
	case EventUnbound:
		var u Unresolved
		if err := json.Unmarshal([]byte(data), &u); err != nil || u.Name == "" {
			return Event{}, false
		}
		return Event{Kind: EventUnbound, Name: u.Name, Unresolved: u}, true
	}
	return Event{}, false
}
