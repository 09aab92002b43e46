package sidecar

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Outliving the function. The kubelet stops a pod's plain containers all at
// once: without care, a plain-container sidecar would exit on SIGTERM while
// the function is still finishing its last requests, and those requests'
// calls through the sidecar would fail. With Config.OutliveApp, a shutdown
// first waits for the function (appGone), serving as usual, and only then
// drains. A native sidecar needs none of this: the kubelet stops it after
// the function.

// activity counts the requests in flight on the sidecar's API and those
// that ended (awaitApp notices a change between two looks; no clock is
// read per request).
type activity struct {
	inflight atomic.Int64
	ended    atomic.Int64
}

// begin and end bracket one request: net/http's (wrap) or the invoke fast
// path's.
func (a *activity) begin() { a.inflight.Add(1) }

func (a *activity) end() {
	a.ended.Add(1)
	a.inflight.Add(-1)
}

func (a *activity) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.begin()
		defer a.end()
		h.ServeHTTP(w, r)
	})
}

// outlivePoll is how often appGone looks at the function's ports.
const outlivePoll = 50 * time.Millisecond

// awaitApp returns once the function looks gone, or when
// Config.OutliveMax has passed since the shutdown began, or when ctx ends.
// The function looks gone when none of Config.AppPorts accepts a
// connection on loopback, no request is in flight on the sidecar's API (a
// function's open watch counts) and none has ended, for Config.OutliveQuiet
// (seen at each look, every outlivePoll).
func (s *Sidecar) awaitApp(ctx context.Context) {
	begun := time.Now()
	deadline := begun.Add(s.cfg.OutliveMax)
	lastSeen := begun
	d := net.Dialer{Timeout: outlivePoll}
	t := time.NewTicker(outlivePoll)
	defer t.Stop()
	s.log.Info("shutdown: waiting for the function to exit", "app_ports", s.cfg.AppPorts, "quiet", s.cfg.OutliveQuiet, "max", s.cfg.OutliveMax)
	ended := s.activity.ended.Load()
	for {
		now := time.Now()
		if n := s.activity.ended.Load(); n != ended || s.activity.inflight.Load() > 0 || s.appListening(ctx, &d) {
			ended, lastSeen = n, now
		}
		switch {
		case now.Sub(lastSeen) >= s.cfg.OutliveQuiet:
			s.log.Info("shutdown: the function is gone", "waited", now.Sub(begun).Round(time.Millisecond))
			return
		case now.After(deadline):
			s.log.Warn("shutdown: the function is still running; stopping anyway", "waited", now.Sub(begun).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// appListening reports whether any of the function's ports accepts a
// connection on loopback.
func (s *Sidecar) appListening(ctx context.Context, d *net.Dialer) bool {
	for _, p := range s.cfg.AppPorts {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			c.Close()
			return true
		}
	}
	return false
}
