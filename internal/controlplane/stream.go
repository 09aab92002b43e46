package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"sort"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// streamWriteTimeout bounds the write of one stream message, so a sidecar
// that stops reading cannot hold a handler forever.
var streamWriteTimeout = 10 * time.Second

// session is one connected sidecar stream.
type session struct {
	sidecarID   string
	streamToken string
	id          Identity
	remote      string
	connectedAt time.Time
	cancel      context.CancelFunc

	// Guarded by Server.mu.
	sentVersion  int64
	sentHash     string
	sentAt       time.Time
	ackedVersion int64
	ackedHash    string
	ackError     string
}

// snapshot is one computed state for a consumer.
type snapshot struct {
	bindings   []registry.Binding
	unresolved []registry.Unresolved
	hash       string
}

// compute resolves every dependency of id against v. Secret material is
// included only for providers whose scope admits the consumer, which
// Resolve has already established.
func (s *Server) compute(ctx context.Context, v *view, id Identity) snapshot {
	var snap snapshot
	for _, dep := range id.Dependencies {
		b, p, err := registry.ResolveBinding(dep, true, func(d registry.Dependency) (*registry.Provider, error) {
			return v.resolve(id.Consumer, d)
		})
		if err != nil {
			var re *registry.ResolveError
			reason := err.Error()
			if errors.As(err, &re) {
				reason = re.Reason
			}
			snap.unresolved = append(snap.unresolved, registry.Unresolved{Name: dep.Alias, Selector: dep.SelectorString(), Reason: reason})
			continue
		}
		if len(b.Secret) == 0 && p.SecretRef != nil && s.secrets != nil {
			sec, err := s.secrets.Secret(ctx, p)
			if err != nil {
				// The reason names the reference, never its content.
				snap.unresolved = append(snap.unresolved, registry.Unresolved{Name: dep.Alias, Selector: dep.SelectorString(),
					Reason: "secret " + p.SecretRef.Name + " of provider " + p.Key() + " is not readable: " + err.Error()})
				continue
			}
			b.Secret = sec
		}
		snap.bindings = append(snap.bindings, b)
	}
	sort.Slice(snap.bindings, func(i, j int) bool { return snap.bindings[i].Name < snap.bindings[j].Name })
	snap.hash = protocol.Hash(snap.bindings, snap.unresolved)
	return snap
}

func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	var hello protocol.Hello
	if p := httpapi.DecodeJSON(w, r, &hello); p != nil {
		httpapi.WriteProblem(w, p)
		return
	}
	if hello.SidecarID == "" || len(hello.SidecarID) > 128 {
		httpapi.WriteProblem(w, httpapi.FieldProblem("sidecarID", "sidecarID is required: a unique id per sidecar process, at most 128 characters"))
		return
	}
	id, err := s.auth.Identify(r.Context(), r, &hello)
	if err != nil {
		httpapi.WriteProblem(w, authProblem(err))
		return
	}
	select {
	case <-s.ready:
	case <-r.Context().Done():
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sess := &session{sidecarID: hello.SidecarID, streamToken: rand.Text(), id: id, remote: r.RemoteAddr, connectedAt: time.Now(), cancel: cancel}
	// The authenticated owner is part of the key: a sidecar id chosen by
	// one pod can never replace (or be acknowledged for) another pod's
	// stream.
	key := id.Owner + "\x00" + hello.SidecarID
	s.mu.Lock()
	if old, ok := s.sessions[key]; ok {
		old.cancel() // a reconnect replaces its stale predecessor
	}
	s.sessions[key] = sess
	s.byToken[sess.streamToken] = sess
	s.limitStreams(id.Owner)
	s.sessionsChanged()
	s.mu.Unlock()
	s.metrics.streams.Inc()
	defer func() {
		s.metrics.streams.Dec()
		s.mu.Lock()
		if s.sessions[key] == sess {
			delete(s.sessions, key)
		}
		delete(s.byToken, sess.streamToken)
		s.sessionsChanged()
		s.mu.Unlock()
	}()
	checked := time.Now()
	// alive rechecks the stream's identity when the last check is older
	// than s.recheck; false ends the stream.
	alive := func() bool {
		if time.Since(checked) < s.recheck {
			return true
		}
		if err := s.auth.Recheck(ctx, r, id); err != nil {
			s.log.Info("ending sidecar stream: its identity no longer holds", "sidecar", hello.SidecarID,
				"consumer", registry.Key(id.Consumer.Namespace, id.Consumer.Name), "err", err)
			return false
		}
		checked = time.Now()
		return true
	}
	s.log.Info("sidecar connected", "sidecar", hello.SidecarID, "consumer", registry.Key(id.Consumer.Namespace, id.Consumer.Name), "remote", r.RemoteAddr, "resume", hello.ResumeVersion)

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(m *protocol.Message) error {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if err := enc.Encode(m); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
		// Clear it: over HTTP/2 (any TLS stream) an expired write
		// deadline resets the stream even while nothing is written, so
		// an idle stream would die between heartbeats.
		_ = rc.SetWriteDeadline(time.Time{})
		return nil
	}

	consumer := id.Consumer
	version := hello.ResumeVersion
	hash := hello.ResumeHash
	var prev map[string]registry.Binding
	first := true
	ticker := time.NewTicker(s.heartbeat)
	defer ticker.Stop()
	var v *view
	for {
		cur := s.current.Load()
		if v != nil && !affects(v, cur, id.Dependencies, consumer.Namespace) {
			// Nothing this consumer selects changed: wait on the newest view.
			v = cur
			if !s.wait(ctx, v, ticker, send, alive) {
				return
			}
			continue
		}
		v = cur
		snap := s.compute(ctx, v, id)
		var msg *protocol.Message
		switch {
		case first && hash != "" && snap.hash == hash:
			msg = &protocol.Message{Type: protocol.TypeUnchanged, Version: version, Hash: hash}
		case first || snap.hash != hash:
			version = max(v.revision, version+1)
			hash = snap.hash
			next := make(map[string]registry.Binding, len(snap.bindings))
			for i := range snap.bindings {
				b := &snap.bindings[i]
				b.Revision = version
				if old, ok := prev[b.Name]; ok && sameBinding(old, *b) {
					b.Revision = old.Revision
				}
				next[b.Name] = *b
			}
			prev = next
			msg = &protocol.Message{Type: protocol.TypeSnapshot, Version: version, Hash: hash, Consumer: &consumer,
				Bindings: snap.bindings, Unresolved: snap.unresolved}
		}
		if first && msg.Type == protocol.TypeUnchanged {
			// Bindings revisions for later diffs start from this snapshot.
			prev = make(map[string]registry.Binding, len(snap.bindings))
			for _, b := range snap.bindings {
				b.Revision = version
				prev[b.Name] = b
			}
		}
		if first {
			msg.Stream = sess.streamToken
		}
		first = false
		if msg != nil && !alive() {
			return
		}
		if msg != nil {
			if err := send(msg); err != nil {
				s.log.Info("sidecar stream write failed", "sidecar", hello.SidecarID, "err", err)
				return
			}
			s.metrics.snapshotsSent.WithLabelValues(msg.Type).Inc()
			s.mu.Lock()
			sess.sentVersion, sess.sentHash, sess.sentAt = version, hash, time.Now()
			s.sessionsChanged()
			s.mu.Unlock()
		}
		if !s.wait(ctx, v, ticker, send, alive) {
			s.log.Info("sidecar disconnected", "sidecar", hello.SidecarID)
			return
		}
	}
}

// MaxStreamsPerOwner bounds the streams one owner (a pod on Kubernetes)
// holds open; a new one beyond it ends the owner's oldest. A pod runs one
// sidecar; a restarted sidecar's predecessor may linger until its
// connection times out, so the newest always wins.
var MaxStreamsPerOwner = 4

// limitStreams ends owner's oldest streams beyond MaxStreamsPerOwner. The
// caller holds s.mu.
func (s *Server) limitStreams(owner string) {
	var mine []*session
	for _, sess := range s.sessions {
		if sess.id.Owner == owner {
			mine = append(mine, sess)
		}
	}
	if len(mine) <= MaxStreamsPerOwner {
		return
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].connectedAt.Before(mine[j].connectedAt) })
	for _, old := range mine[:len(mine)-MaxStreamsPerOwner] {
		old.cancel()
		s.log.Warn("too many streams for one owner; ending its oldest", "owner", owner, "sidecar", old.sidecarID, "max", MaxStreamsPerOwner)
	}
}

// wait blocks until a view newer than v is published (true), or the stream
// ends (false). It sends heartbeats meanwhile, and ends the stream when
// alive says its identity no longer holds.
func (s *Server) wait(ctx context.Context, v *view, ticker *time.Ticker, send func(*protocol.Message) error, alive func() bool) bool {
	recheck := time.NewTicker(s.recheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-v.changed:
			return true
		case <-recheck.C:
			if !alive() {
				return false
			}
		case <-ticker.C:
			if err := send(&protocol.Message{Type: protocol.TypeHeartbeat}); err != nil {
				return false
			}
		}
	}
}

// sameBinding compares bindings ignoring their revisions.
func sameBinding(a, b registry.Binding) bool {
	a.Revision, b.Revision = 0, 0
	return reflect.DeepEqual(a, b)
}

func (s *Server) handleAck(w http.ResponseWriter, r *http.Request) {
	var ack protocol.Ack
	if p := httpapi.DecodeJSON(w, r, &ack); p != nil {
		httpapi.WriteProblem(w, p)
		return
	}
	caller, err := s.auth.Caller(r.Context(), r)
	if err != nil {
		httpapi.WriteProblem(w, authProblem(err))
		return
	}
	if caller.User != "" {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusForbidden, "forbidden", "only a sidecar acknowledges its own stream; "+caller.User+" is a user"))
		return
	}
	s.mu.Lock()
	sess, ok := s.byToken[ack.Stream]
	if ok && (subtle.ConstantTimeCompare([]byte(ack.Stream), []byte(sess.streamToken)) != 1 || sess.sidecarID != ack.SidecarID ||
		!caller.Admin && sess.id.Owner != caller.Owner) {
		ok = false
	}
	if !ok {
		s.mu.Unlock()
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusNotFound, "unknown-stream",
			"no stream of sidecar "+ack.SidecarID+" with this token is open for you: open /v1/stream and ack with the token of its first message"))
		return
	}
	if ack.Error != "" {
		sess.ackError = ack.Error
	} else if ack.Version >= sess.ackedVersion {
		sess.ackedVersion, sess.ackedHash, sess.ackError = ack.Version, ack.Hash, ""
		if ack.Version == sess.sentVersion && !sess.sentAt.IsZero() {
			s.metrics.ackLatency.Observe(time.Since(sess.sentAt).Seconds())
		}
	}
	s.sessionsChanged()
	s.mu.Unlock()
	if ack.Error != "" {
		s.metrics.nacks.Inc()
		s.log.Warn("sidecar rejected snapshot", "sidecar", ack.SidecarID, "version", ack.Version, "err", ack.Error)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Sidecars lists connected sidecars, sorted by ID.
func (s *Server) Sidecars() []protocol.SidecarStatus { return s.sidecars(Caller{Admin: true}) }

// sidecars lists the connected sidecars caller may see: all for an admin,
// else those of its own pod.
func (s *Server) sidecars(caller Caller) []protocol.SidecarStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]protocol.SidecarStatus, 0, len(s.sessions))
	self := ""
	if s.replicas != nil {
		self = s.replicas.Self
	}
	for _, sess := range s.sessions {
		if !caller.Admin && sess.id.Owner != caller.Owner {
			continue
		}
		out = append(out, sess.status(self))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
