package sidecar

import (
	"encoding/base64"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// pool is the invokable endpoints of one binding, in snapshot order.
type pool struct {
	endpoints []*endpoint
	next      atomic.Uint32
	counters  *invokeCounterSet // the dependency's invoke results
	plain     bool              // every endpoint is http (not https): the fast path can relay
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
	p := &pool{counters: es.metrics.invokeCounters(e.binding.Name), plain: true}
	for _, ep := range e.binding.Endpoints {
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
	e.pool.Store(p)
	return p
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
