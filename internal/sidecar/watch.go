package sidecar

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/registry"
)

// keepaliveInterval spaces the ": keepalive" comments of an idle watch.
var keepaliveInterval = 15 * time.Second

// handleWatch streams server-sent events: on connect one "binding" event
// per current binding and one "unbound" event per unresolved dependency,
// then one event per change. Event ids are binding revisions.
func (s *Sidecar) handleWatch(w http.ResponseWriter, r *http.Request) {
	if !s.waiters.Enter() {
		httpapi.WriteProblem(w, httpapi.TooBusy("watches and long polls", s.waiters.Max))
		return
	}
	defer s.waiters.Leave()
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 8<<10)
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if bw.Flush() != nil || rc.Flush() != nil {
			return false
		}
		return true
	}
	if !flush() {
		return
	}

	ticker := time.NewTicker(keepaliveInterval)
	defer ticker.Stop()
	prev := &snapshot{} // the client has seen nothing yet
	for {
		cur := s.cache.load()
		if cur.loaded {
			writeChanges(bw, prev, cur)
			if !flush() {
				return
			}
			prev = cur
		}
		select {
		case <-cur.changed:
		case <-ticker.C:
			_, _ = bw.WriteString(": keepalive\n\n")
			if !flush() {
				return
			}
		case <-s.closing:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// writeChanges writes the events that take a client from prev to cur.
func writeChanges(bw *bufio.Writer, prev, cur *snapshot) {
	for _, name := range cur.names {
		e := cur.bindings[name]
		if old, ok := prev.bindings[name]; ok && old.binding.Revision == e.binding.Revision {
			continue
		}
		writeEvent(bw, "binding", e.binding.Revision, e.body[:len(e.body)-1])
	}
	var gone []string
	for name := range cur.unresolved {
		_, wasBound := prev.bindings[name]
		_, wasUnresolved := prev.unresolved[name]
		if wasBound || !wasUnresolved {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		u := cur.unresolved[name]
		writeEvent(bw, "unbound", u.revision, u.body)
	}
	// Bound before, absent from the new snapshot altogether.
	gone = gone[:0]
	for name := range prev.bindings {
		if _, ok := cur.bindings[name]; ok {
			continue
		}
		if _, ok := cur.unresolved[name]; !ok {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		old := prev.bindings[name].binding
		body, _ := json.Marshal(registry.Unresolved{Name: name, Selector: old.Selector, Reason: "no longer in the snapshot"})
		writeEvent(bw, "unbound", old.Revision+1, body)
	}
}

func writeEvent(bw *bufio.Writer, event string, id int64, data []byte) {
	_, _ = bw.WriteString("event: ")
	_, _ = bw.WriteString(event)
	_, _ = bw.WriteString("\nid: ")
	_, _ = bw.WriteString(strconv.FormatInt(id, 10))
	_, _ = bw.WriteString("\ndata: ")
	_, _ = bw.Write(data)
	_, _ = bw.WriteString("\n\n")
}
