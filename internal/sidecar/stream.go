package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/sdk/backoff"
)

// streamer keeps the cache in step with the control plane: it holds one
// snapshot stream open, applies and acknowledges every snapshot, and
// reconnects with capped exponential backoff and full jitter, resuming from
// the last acknowledged version and hash. It never polls.
type streamer struct {
	client  *client.Client
	cache   *cache
	hello   protocol.Hello // SidecarID, Consumer, Dependencies
	log     *slog.Logger
	metrics *metrics
	// files, when set, projects snapshots to binding files; a snapshot is
	// acknowledged once they are written, and rejected (NACK) when they
	// could not be.
	files *projector
	// onApply runs after each applied snapshot (the invoke proxy prunes
	// endpoint health there).
	onApply func(*snapshot)

	minBackoff, maxBackoff time.Duration
	heartbeatTimeout       time.Duration
	// podInfoDir, when set, is watched for label and annotation changes,
	// which end the stream so the control plane identifies the pod again.
	podInfoDir      string
	podInfoInterval time.Duration

	connected atomic.Bool
	mu        sync.Mutex // guards the fields below
	since     time.Time  // when the current connection state began
	lastErr   string     // why the last connection ended (no secrets: transport errors only)
	acked     protocol.Ack
}

// status reports the connection state for /readyz.
func (st *streamer) status() (connected bool, since time.Time, lastErr string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.connected.Load(), st.since, st.lastErr
}

func (st *streamer) setConnected(ok bool, reason string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.connected.Load() != ok || st.since.IsZero() {
		st.since = time.Now()
	}
	st.connected.Store(ok)
	if reason != "" {
		st.lastErr = reason
	}
	if ok {
		st.metrics.connected.Set(1)
	} else {
		st.metrics.connected.Set(0)
	}
}

// run streams until ctx ends.
func (st *streamer) run(ctx context.Context) {
	st.setConnected(false, "not connected yet")
	retry := &backoff.Backoff{Min: st.minBackoff, Max: st.maxBackoff, Jitter: true}
	for {
		healthy, err := st.session(ctx)
		if ctx.Err() != nil {
			st.setConnected(false, "sidecar stopping")
			return
		}
		st.setConnected(false, err.Error())
		if errors.Is(err, errIdentityChanged) {
			// Not a failure: reconnect at once, keeping the snapshot.
			st.log.Info("pod labels or annotations changed; reconnecting to be identified again")
			retry.Reset()
			continue
		}
		if healthy {
			retry.Reset()
		}
		delay := retry.Next()
		st.metrics.reconnects.Inc()
		st.log.Warn("control plane stream ended; serving the last snapshot", "err", err, "retry_in", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			st.setConnected(false, "sidecar stopping")
			return
		case <-t.C:
		}
	}
}

// session runs one connection. healthy reports whether it got as far as a
// snapshot (so the backoff starts over).
func (st *streamer) session(ctx context.Context) (healthy bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	hello := st.hello
	st.mu.Lock()
	hello.ResumeVersion, hello.ResumeHash = st.acked.Version, st.acked.Hash
	st.mu.Unlock()

	// Read before dialing, so a change during the dial is not missed.
	podInfo := readPodInfo(st.podInfoDir)
	go watchPodInfo(ctx, st.podInfoDir, podInfo, st.podInfoInterval, func() { cancel(errIdentityChanged) })

	s, err := st.client.Stream(ctx, hello)
	if err != nil {
		return false, err
	}
	defer s.Close()

	// A silent stream is a dead one: the watchdog ends it when nothing
	// (not even a heartbeat) arrives in time.
	errSilent := fmt.Errorf("no message from the control plane in %s", st.heartbeatTimeout)
	watchdog := time.AfterFunc(st.heartbeatTimeout, func() { cancel(errSilent) })
	defer watchdog.Stop()

	var token string // from the stream's first message; acks carry it
	for {
		m, err := s.Recv()
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
				return healthy, cause
			}
			return healthy, err
		}
		watchdog.Reset(st.heartbeatTimeout)
		if m.Stream != "" {
			token = m.Stream
		}
		switch m.Type {
		case protocol.TypeSnapshot:
			hash := m.Hash
			if hash == "" {
				hash = protocol.Hash(m.Bindings, m.Unresolved)
			}
			snap := st.cache.apply(m.Version, hash, m.Bindings, m.Unresolved)
			st.metrics.snapshotVersion.Set(float64(snap.version))
			st.metrics.snapshots.Inc()
			if st.onApply != nil {
				st.onApply(snap)
			}
			st.log.Info("snapshot applied", "version", m.Version, "bindings", len(snap.names), "unresolved", len(snap.unresolved))
			st.ack(ctx, token, m.Version, hash, st.projectionError(ctx, snap.version))
			healthy = true
			st.setConnected(true, "")
		case protocol.TypeUnchanged:
			// Our copy is current; a sidecar that restarted never resumes,
			// so the cache already holds this version.
			st.ack(ctx, token, m.Version, m.Hash, nil)
			healthy = true
			st.setConnected(true, "")
		case protocol.TypeHeartbeat:
		case protocol.TypeError:
			return healthy, fmt.Errorf("control plane refused the stream: %s", m.Error)
		default:
			st.log.Debug("ignoring unknown stream message", "type", m.Type)
		}
	}
}

// projectionError waits (boundedly) for the binding files of snapshot
// version and returns what went wrong writing them, if anything.
func (st *streamer) projectionError(ctx context.Context, version int64) error {
	if st.files == nil {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return st.files.wait(wctx, version)
}

// ack acknowledges a version and remembers it for the next resume.
func (st *streamer) ack(ctx context.Context, token string, version int64, hash string, applyErr error) {
	a := protocol.Ack{SidecarID: st.hello.SidecarID, Stream: token, Version: version, Hash: hash}
	if applyErr != nil {
		// A NACK: the control plane logs and counts it; the files are
		// retried, and the next snapshot is acknowledged as usual.
		a.Error = applyErr.Error()
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := st.client.Ack(actx, a); err != nil && !errors.Is(err, context.Canceled) {
		st.log.Warn("ack failed", "version", version, "err", err)
		return
	}
	if applyErr != nil {
		return // resume from the last snapshot that was fully applied
	}
	st.mu.Lock()
	st.acked = a
	st.mu.Unlock()
}
