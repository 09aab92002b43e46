package sidecar

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// Idle upstream connections of the fast path, per endpoint.
const (
	maxIdlePerEndpoint = 256
	upstreamIdle       = 90 * time.Second
	// probeAfter: a connection idle longer than this is checked for a
	// close by the provider before it is reused (probeClosed).
	probeAfter = 100 * time.Millisecond
	// upstreamHeadBytes bounds a provider's response head; a larger one
	// is a 502.
	upstreamHeadBytes = 16 << 10
	dialTimeout       = 5 * time.Second
)

// upConn is one kept-alive HTTP/1.1 connection to a provider.
type upConn struct {
	net.Conn
	br       *bufio.Reader
	lastUsed time.Time
	reused   bool
}

// upstreamConns is a LIFO stack of idle connections: the most recently
// used one is the likeliest to be alive and warm.
type upstreamConns struct {
	mu     sync.Mutex
	idle   []*upConn
	closed bool
}

// get returns an idle connection that looks alive, or nil. With probe,
// every connection is checked for a close by the provider (one
// non-blocking peek); without, only those idle longer than probeAfter.
func (u *upstreamConns) get(now time.Time, probe bool) *upConn {
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			u.mu.Unlock()
			return nil
		}
		c := u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		idle := now.Sub(c.lastUsed)
		if idle > upstreamIdle || ((probe || idle > probeAfter) && probeClosed(c.Conn)) {
			_ = c.Close()
			continue
		}
		c.reused = true
		return c
	}
}

// put keeps c for reuse, or closes it when the pool is full or closed.
func (u *upstreamConns) put(c *upConn, now time.Time) {
	c.lastUsed = now
	u.mu.Lock()
	if u.closed || len(u.idle) >= maxIdlePerEndpoint {
		u.mu.Unlock()
		_ = c.Close()
		return
	}
	u.idle = append(u.idle, c)
	u.mu.Unlock()
}

// closeAll closes the idle connections and every one put back later.
func (u *upstreamConns) closeAll() {
	u.mu.Lock()
	idle := u.idle
	u.idle, u.closed = nil, true
	u.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
	}
}

var upstreamReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, upstreamHeadBytes) }}

// dialUpstream opens a new connection to ep, before deadline.
func dialUpstream(ep *endpoint, deadline time.Time) (*upConn, error) {
	d := net.Dialer{Deadline: deadline, KeepAlive: 30 * time.Second, Timeout: dialTimeout}
	c, err := d.Dial("tcp", ep.dialAddr())
	if err != nil {
		return nil, err
	}
	br := upstreamReaders.Get().(*bufio.Reader)
	br.Reset(c)
	return &upConn{Conn: c, br: br}, nil
}

// discard closes c for good and recycles its reader.
func (c *upConn) discard() {
	_ = c.Close()
	c.br.Reset(nil)
	upstreamReaders.Put(c.br)
	c.br = nil
}
