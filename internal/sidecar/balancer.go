package sidecar

import (
	"encoding/base64"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// Passive outlier ejection: an endpoint that fails ejectAfter consecutive
// times (a connection failure or a 5xx) is skipped for ejectBase, doubling
// on every further ejection up to ejectMax, as long as another endpoint is
// available; one success ends the ejection and resets the doubling.
const (
	ejectAfter = 5
	ejectBase  = 10 * time.Second
	ejectMax   = 5 * time.Minute
)

// endpoint is one upstream address and its health, shared by every
// snapshot that lists the same URL so ejections survive binding updates.
type endpoint struct {
	url      string
	scheme   string
	host     string
	addr     string // host:port to dial (dialAddr)
	basePath string // target path without a trailing '/', often ""
	rawBase  string // its escaped form when it differs, else ""
	user     *url.Userinfo
	escBase  string // basePath as sent on the wire: rawBase, or basePath escaped
	auth     string // "Basic ..." from user, else ""

	conns upstreamConns // the fast path's idle connections

	failures     atomic.Int32
	ejections    atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds
}

// available reports whether the endpoint is not ejected at now.
func (e *endpoint) available(now int64) bool { return e.ejectedUntil.Load() <= now }

// succeeded resets the failure streak and the ejection backoff, and ends
// an ejection (a retry may reach an ejected endpoint, see pick).
func (e *endpoint) succeeded() {
	if e.failures.Load() != 0 {
		e.failures.Store(0)
	}
	if e.ejections.Load() != 0 {
		e.ejections.Store(0)
	}
	if e.ejectedUntil.Load() != 0 {
		e.ejectedUntil.Store(0)
	}
}

// failed counts a failure and reports the ejection time when the streak
// reached ejectAfter (else 0).
func (e *endpoint) failed(now time.Time) time.Duration {
	if e.failures.Add(1) < ejectAfter {
		return 0
	}
	e.failures.Store(0)
	n := e.ejections.Add(1)
	d := ejectMax
	if n <= 6 {
		d = min(ejectMax, ejectBase<<(n-1))
	}
	e.ejectedUntil.Store(now.Add(d).UnixNano())
	return d
}

// pool is the invokable endpoints of one binding, in snapshot order. The
// pool of a split binding has no endpoints of its own: it holds one pool
// per target that receives invocations, and split picks among them.
type pool struct {
	endpoints []*endpoint
	next      atomic.Uint32
	counters  *invokeCounterSet // the dependency's invoke results
	plain     bool              // every endpoint is http (not https): the fast path can relay
	split     *splitter         // set on the pool of a split binding
}

// empty reports whether the pool has nothing to invoke.
func (p *pool) empty() bool { return len(p.endpoints) == 0 && p.split == nil }

// target returns the pool an invocation uses: p itself, or for a split
// the next target's pool in smooth weighted round-robin order. Callers
// call it once per invocation, after deciding which path serves it.
func (p *pool) target() *pool {
	if p.split == nil {
		return p
	}
	return p.split.next()
}

// splitter spreads invocations over the targets of a split by smooth
// weighted round robin (as nginx does for upstream weights): each pick
// adds every target's weight to its running score, takes the highest
// score, and subtracts the total weight from it. With weights that add up
// to 100, every run of 100 consecutive picks holds each target exactly
// its weight times, interleaved rather than in bursts; so the split is
// exact, not a random approximation. A new snapshot builds a new
// splitter, starting afresh at the new weights.
type splitter struct {
	mu      sync.Mutex
	pools   []*pool
	weights []int
	current []int
	total   int
}

func (s *splitter) next() *pool {
	s.mu.Lock()
	best := 0
	for i, w := range s.weights {
		s.current[i] += w
		if s.current[i] > s.current[best] {
			best = i
		}
	}
	s.current[best] -= s.total
	s.mu.Unlock()
	return s.pools[best]
}

// pick returns the next endpoint in round-robin order that is not in
// tried and not ejected; when every endpoint not in tried is ejected, the
// first of them anyway; nil when all were tried. Ejection steers requests
// away from an endpoint while another is available; it never fails a
// request by itself, since an ejected endpoint may have recovered (as
// Envoy's panic threshold does).
func (p *pool) pick(now int64, tried []*endpoint) *endpoint {
	n := uint32(len(p.endpoints))
	if n == 0 {
		return nil
	}
	start := p.next.Add(1) - 1
	var ejected *endpoint
	for i := range n {
		e := p.endpoints[(start+i)%n]
		switch {
		case contains(tried, e):
		case e.available(now):
			return e
		case ejected == nil:
			ejected = e
		}
	}
	return ejected
}

func contains(list []*endpoint, e *endpoint) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

// endpoints keeps one *endpoint per URL across snapshots.
type endpoints struct {
	mu      sync.Mutex
	byURL   map[string]*endpoint
	metrics *metrics
}

// poolFor returns the pool of a binding, building it on first use. Only
// http and https endpoints are invokable.
func (es *endpoints) poolFor(e *entry) *pool {
	if p := e.pool.Load(); p != nil {
		return p
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	if p := e.pool.Load(); p != nil {
		return p
	}
	counters := es.metrics.invokeCounters(e.binding.Name)
	p := &pool{counters: counters, plain: true}
	if len(e.binding.Split) == 0 {
		es.fill(p, e.binding.Endpoints)
		e.pool.Store(p)
		return p
	}
	// A split: one pool per target with a share and an invokable
	// endpoint. A target without either receives no invocation.
	sp := &splitter{}
	for _, st := range e.binding.Split {
		if st.Share <= 0 {
			continue
		}
		tp := &pool{counters: counters, plain: true}
		es.fill(tp, st.Endpoints)
		if len(tp.endpoints) == 0 {
			continue
		}
		sp.pools = append(sp.pools, tp)
		sp.weights = append(sp.weights, st.Share)
		sp.total += st.Share
		p.plain = p.plain && tp.plain
	}
	if len(sp.pools) > 0 {
		sp.current = make([]int, len(sp.pools))
		p.split = sp
	}
	e.pool.Store(p)
	return p
}

// fill adds the ready http(s) endpoints of eps to p. es.mu is held.
func (es *endpoints) fill(p *pool, eps []registry.Endpoint) {
	for _, ep := range eps {
		if !ep.Ready {
			continue
		}
		st, ok := es.byURL[ep.URL]
		if !ok {
			u, err := url.Parse(ep.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				continue
			}
			st = newEndpoint(ep.URL, u)
			es.byURL[ep.URL] = st
		}
		p.endpoints = append(p.endpoints, st)
		p.plain = p.plain && st.scheme == "http"
	}
}

func newEndpoint(raw string, u *url.URL) *endpoint {
	e := &endpoint{url: raw, scheme: u.Scheme, host: u.Host, basePath: strings.TrimSuffix(u.Path, "/"), rawBase: strings.TrimSuffix(u.RawPath, "/"), user: u.User}
	e.escBase = strings.TrimSuffix(u.EscapedPath(), "/")
	e.addr = e.hostPort()
	if u.User != nil {
		pw, _ := u.User.Password()
		e.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
	}
	return e
}

// prune forgets the health of URLs that no binding of snap lists.
func (es *endpoints) prune(snap *snapshot) {
	live := map[string]bool{}
	for _, e := range snap.bindings {
		for _, ep := range e.binding.Endpoints {
			live[ep.URL] = true
		}
		for _, st := range e.binding.Split {
			for _, ep := range st.Endpoints {
				live[ep.URL] = true
			}
		}
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	for u := range es.byURL {
		if !live[u] {
			es.byURL[u].conns.closeAll()
			delete(es.byURL, u)
		}
	}
}
