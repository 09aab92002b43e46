package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/sdk/backoff"
)

// Options configure a Server. Store is required; the rest have defaults.
type Options struct {
	Store registry.Store
	// Auth identifies sidecars and authorises writes. Default: Trusting,
	// for loopback use by `ddi dev`.
	Auth Authenticator
	// Secrets fills secret material for providers that only reference it.
	// Default: none (the store holds secrets inline).
	Secrets SecretSource
	// SecretPoll is how often the material of providers that only
	// reference their secret (Secrets) is read again; a change is pushed
	// to every bound consumer like any other provider change. Zero turns
	// it off; it is off without Secrets.
	SecretPoll time.Duration
	// SecretReads bounds the secret reads of one replica per second, so
	// that many providers stretch a poll round instead of loading the
	// source: a round of N reads takes at least N/SecretReads seconds.
	// Default 50.
	SecretReads float64
	// Heartbeat is the interval of stream heartbeats. Default 15s.
	Heartbeat time.Duration
	// Recheck is how often an open stream asks the Authenticator whether
	// its identity still holds (on Kubernetes: its pod still exists and
	// its token is still valid). A snapshot is never sent on an identity
	// checked longer ago than this. Default 10s.
	Recheck time.Duration
	// Replicas, when set, makes the graph and GET /v1/sidecars show the
	// sidecars of every replica of this control plane (replicas.go).
	// Default: none, one process (`ddi dev`).
	Replicas *Replicas
	Logger   *slog.Logger
}

// Server is the control plane. Create it with New, start its store watch
// with Run, and serve Handler.
type Server struct {
	store     registry.Store
	auth      Authenticator
	secrets   SecretSource
	heartbeat time.Duration
	log       *slog.Logger

	current atomic.Pointer[view]
	ready   chan struct{}

	mu sync.Mutex
	// sessions holds open streams by owner and sidecar id (a sidecar id
	// names a stream only within its own pod); byToken by the stream
	// token that acknowledgements carry.
	sessions map[string]*session
	byToken  map[string]*session
	recheck  time.Duration

	secretPoll time.Duration
	// secretReads bounds secret reads per second (Options.SecretReads).
	secretReads float64
	// touch carries provider keys whose referenced secret changed to the
	// goroutine that publishes views.
	touch chan []string

	metrics *metrics
	reg     *prometheus.Registry

	regCap regCap // MaxRegistrationsPerOwner (regcap.go)

	// sessChange is closed and replaced (under mu) whenever a stream
	// opens, ends, is sent a snapshot or acknowledges one (graph.go).
	sessChange chan struct{}
	// stopping is closed when Run's context ends, so that dashboard event
	// streams end with the streams of sidecars.
	stopping     chan struct{}
	stoppingOnce sync.Once

	// replicas and peerPoll merge the other replicas' sidecars
	// (replicas.go); replicas is nil in a single process.
	replicas *Replicas
	peerPoll peerPoll
}

// New builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("controlplane: Options.Store is required")
	}
	s := &Server{
		store:     opts.Store,
		auth:      opts.Auth,
		secrets:   opts.Secrets,
		heartbeat: opts.Heartbeat,
		log:       opts.Logger,
		ready:     make(chan struct{}),
		sessions:  make(map[string]*session),
		byToken:   make(map[string]*session),
		recheck:   opts.Recheck,
		touch:     make(chan []string, 1),
		reg:       prometheus.NewRegistry(),

		sessChange: make(chan struct{}),
		stopping:   make(chan struct{}),
	}
	if s.auth == nil {
		s.auth = Trusting{}
	}
	if s.heartbeat <= 0 {
		s.heartbeat = 15 * time.Second
	}
	if s.recheck <= 0 {
		s.recheck = 10 * time.Second
	}
	if s.secrets != nil {
		s.secretPoll = opts.SecretPoll
	}
	if s.secretReads = opts.SecretReads; s.secretReads <= 0 {
		s.secretReads = 50
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.Replicas != nil {
		rp := *opts.Replicas
		if rp.Peers == nil || rp.Client == nil || rp.Token == nil || rp.Verify == nil {
			return nil, errors.New("controlplane: Options.Replicas needs Peers, Client, Token and Verify")
		}
		if rp.Timeout <= 0 {
			rp.Timeout = 2 * time.Second
		}
		if rp.Poll <= 0 {
			rp.Poll = 3 * time.Second
		}
		s.replicas = &rp
	}
	s.metrics = newMetrics(s.reg)
	s.current.Store(newView(0, map[string]*registry.Provider{}, nil))
	return s, nil
}

// Run keeps the provider index in step with the store until ctx ends. It
// lists the store, then watches from the list's revision; when the watch
// ends early (a slow watcher, a compacted revision, a store restart) it
// lists again. Streams never see a gap: each new view is complete.
func (s *Server) Run(ctx context.Context) error {
	if s.secretPoll > 0 {
		go s.pollSecrets(ctx)
	}
	// Lists are retried after 100ms doubling to 5s.
	retry := &backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		err := s.sync(ctx)
		if ctx.Err() != nil {
			s.stoppingOnce.Do(func() { close(s.stopping) })
			s.mu.Lock()
			for _, sess := range s.sessions {
				sess.cancel()
			}
			s.mu.Unlock()
			return nil
		}
		delay := retry.Next()
		s.log.Warn("store watch ended; listing again", "err", err, "backoff", delay)
		select {
		case <-ctx.Done():
			s.stoppingOnce.Do(func() { close(s.stopping) })
			return nil
		case <-time.After(delay):
		}
	}
}

func (s *Server) sync(ctx context.Context) error {
	list, rev, err := s.store.List(ctx)
	if err != nil {
		return fmt.Errorf("list providers: %w", err)
	}
	providers := make(map[string]*registry.Provider, len(list))
	for i := range list {
		p := list[i]
		providers[p.Key()] = &p
	}
	s.publish(rev, providers, nil)
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	events, err := s.store.Watch(ctx, rev)
	if err != nil {
		return fmt.Errorf("watch providers from revision %d: %w", rev, err)
	}
	for {
		var batch []registry.Event
		var ev registry.Event
		var ok bool
		select {
		case ev, ok = <-events:
		case keys := <-s.touch:
			s.republish(keys)
			continue
		}
		if !ok {
			return errors.New("watch channel closed")
		}
		batch = append(batch, ev)
		// Coalesce whatever else is already queued into one new view.
	drain:
		for len(batch) < 1024 {
			select {
			case ev, ok := <-events:
				if !ok {
					break drain
				}
				batch = append(batch, ev)
			default:
				break drain
			}
		}
		old := s.current.Load()
		next := make(map[string]*registry.Provider, len(old.byKey)+1)
		for k, p := range old.byKey {
			next[k] = p
		}
		last := old.revision
		touched := make(map[string]bool, 2*len(batch))
		for _, ev := range batch {
			key := ev.Provider.Key()
			touched["key:"+key] = true
			touched["type:"+ev.Provider.Type] = true
			if prev, ok := next[key]; ok {
				touched["type:"+prev.Type] = true
			}
			switch ev.Type {
			case registry.Put:
				p := ev.Provider
				next[key] = &p
			case registry.Delete:
				delete(next, key)
			}
			last = ev.Revision
		}
		s.metrics.storeEvents.Add(float64(len(batch)))
		s.publish(last, next, touched)
	}
}

// republish publishes the current providers again as changed at keys, so
// that every stream that selects one of them recomputes its snapshot
// (and reads the provider's secret again).
func (s *Server) republish(keys []string) {
	old := s.current.Load()
	touched := make(map[string]bool, 2*len(keys))
	for _, k := range keys {
		if p, ok := old.byKey[k]; ok {
			touched["key:"+k] = true
			touched["type:"+p.Type] = true
		}
	}
	if len(touched) == 0 {
		return
	}
	s.publish(old.revision, old.byKey, touched)
}

func (s *Server) publish(rev int64, providers map[string]*registry.Provider, touched map[string]bool) {
	v := newView(rev, providers, touched)
	// Only this goroutine publishes. Linking before the store makes old.next
	// visible to every reader that loads v.
	old := s.current.Load()
	old.next = v
	s.current.Store(v)
	close(old.changed)
	s.metrics.revision.Set(float64(rev))
	s.metrics.providers.Set(float64(len(providers)))
}

// Ready is closed once the first store listing is indexed.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Handler returns the control plane's HTTP API: the provider REST API, the
// snapshot stream, acknowledgements, health and metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	s.dashboardRoutes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return mux
}

// Disconnect ends every stream whose consumer matches, so that its sidecar
// reconnects and is identified afresh (used when a consumer's declared
// dependencies change outside the stream, as with Kubernetes Binding
// objects). A reconnect whose snapshot did not change costs one
// "unchanged" message.
func (s *Server) Disconnect(match func(registry.Consumer) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sess := range s.sessions {
		if match(sess.id.Consumer) {
			sess.cancel()
			n++
		}
	}
	return n
}
