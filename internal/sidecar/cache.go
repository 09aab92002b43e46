package sidecar

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"ddi.dev/ddi/internal/registry"
)

// snapshot is one immutable state of the consumer's bindings. Readers load
// it through cache.cur without locks; changed is closed when a newer
// snapshot replaces it, which wakes every long poll and watcher at once.
type snapshot struct {
	loaded     bool // false only for the empty state before the first snapshot
	version    int64
	hash       string
	bindings   map[string]*entry
	names      []string // bound names, sorted
	unresolved map[string]*unbound
	listBody   []byte // GET /v1/bindings, pre-encoded
	listLength []string
	changed    chan struct{}
}

// entry is one binding with its JSON pre-encoded for the hot path.
type entry struct {
	binding registry.Binding // Revision is the local, monotonic one
	content []byte           // JSON with the revision zeroed, to detect changes
	body    []byte           // JSON with the revision, plus "\n"
	length  []string         // Content-Length header value of body
	// pool holds the invoke proxy's endpoint pool, built on first use.
	pool atomic.Pointer[pool]
}

// unbound is a dependency without a binding. revision grows when a bound
// dependency loses its binding, so an "unbound" event sorts after the last
// "binding" event of that name.
type unbound struct {
	registry.Unresolved
	revision int64
	body     []byte // JSON of Unresolved
}

// cache holds the current snapshot and the per-name revision history that
// keeps binding revisions monotonic across control-plane restarts.
type cache struct {
	cur atomic.Pointer[snapshot]

	mu      sync.Mutex       // serialises apply
	lastRev map[string]int64 // highest revision ever served per name
}

func newCache() *cache {
	c := &cache{lastRev: map[string]int64{}}
	c.cur.Store(&snapshot{bindings: map[string]*entry{}, unresolved: map[string]*unbound{}, changed: make(chan struct{}),
		listBody: []byte("{\"bindings\":[],\"unresolved\":[],\"version\":0}\n")})
	return c
}

// load returns the current snapshot.
func (c *cache) load() *snapshot { return c.cur.Load() }

// apply installs a new complete state and wakes everyone waiting on the
// previous one. A binding whose content is unchanged keeps its revision; a
// changed one gets max(incoming, previous+1); one that reappears continues
// from the highest revision it ever had.
func (c *cache) apply(version int64, hash string, bindings []registry.Binding, unresolved []registry.Unresolved) *snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cur.Load()
	next := &snapshot{
		loaded:     true,
		version:    version,
		hash:       hash,
		bindings:   make(map[string]*entry, len(bindings)),
		names:      make([]string, 0, len(bindings)),
		unresolved: make(map[string]*unbound, len(unresolved)),
		changed:    make(chan struct{}),
	}
	for _, b := range bindings {
		if _, dup := next.bindings[b.Name]; dup {
			continue
		}
		incoming := b.Revision
		b.Revision = 0
		content, err := json.Marshal(b)
		if err != nil {
			continue // cannot happen for these types
		}
		e := &entry{content: content}
		if prev, ok := old.bindings[b.Name]; ok && bytes.Equal(prev.content, content) {
			b.Revision = prev.binding.Revision
		} else {
			b.Revision = max(incoming, c.lastRev[b.Name]+1)
		}
		c.lastRev[b.Name] = b.Revision
		e.binding = b
		e.body, _ = json.Marshal(b)
		e.body = append(e.body, '\n')
		e.length = []string{strconv.Itoa(len(e.body))}
		next.bindings[b.Name] = e
		next.names = append(next.names, b.Name)
	}
	slices.Sort(next.names)
	for _, u := range unresolved {
		if _, bound := next.bindings[u.Name]; bound {
			continue
		}
		rev := c.lastRev[u.Name]
		if _, wasBound := old.bindings[u.Name]; wasBound {
			rev++
			c.lastRev[u.Name] = rev
		} else if prev, ok := old.unresolved[u.Name]; ok {
			rev = prev.revision
		}
		body, _ := json.Marshal(u)
		next.unresolved[u.Name] = &unbound{Unresolved: u, revision: rev, body: body}
	}
	// A name that was bound and is now absent altogether also moves on, so
	// that it comes back with a higher revision.
	for name := range old.bindings {
		if _, ok := next.bindings[name]; !ok {
			if _, ok := next.unresolved[name]; !ok {
				c.lastRev[name]++
			}
		}
	}
	next.listBody = encodeList(next)
	next.listLength = []string{strconv.Itoa(len(next.listBody))}
	c.cur.Store(next)
	close(old.changed)
	return next
}

// encodeList builds the body of GET /v1/bindings from the pre-encoded
// bindings.
func encodeList(s *snapshot) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"bindings":[`)
	for i, name := range s.names {
		if i > 0 {
			buf.WriteByte(',')
		}
		body := s.bindings[name].body
		buf.Write(body[:len(body)-1])
	}
	buf.WriteString(`],"unresolved":[`)
	names := make([]string, 0, len(s.unresolved))
	for name := range s.unresolved {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(s.unresolved[name].body)
	}
	buf.WriteString(`],"version":`)
	buf.WriteString(strconv.FormatInt(s.version, 10))
	buf.WriteString("}\n")
	return buf.Bytes()
}
