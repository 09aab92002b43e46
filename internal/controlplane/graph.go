package controlplane

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"net/http"
	"sort"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// Graph is the whole dependency graph as the control plane knows it: every
// function with a connected sidecar, its dependencies and what each
// resolves to, and every provider. GET /v1/graph answers it and GET
// /v1/graph/events streams it; the dashboard draws it.
type Graph struct {
	// Revision is the store revision of the providers.
	Revision  int64           `json:"revision"`
	Functions []GraphFunction `json:"functions"`
	Providers []GraphProvider `json:"providers"`
	// Replicas, when the control plane runs as several replicas, says
	// what each contributed to Functions (the answering one first) or why
	// it could not be asked (docs/dashboard.md, "Replicas").
	Replicas []ReplicaStatus `json:"replicas,omitempty"`
}

// GraphFunction is one consumer with at least one connected sidecar.
type GraphFunction struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Sidecars       []GraphSidecar    `json:"sidecars"`
	// Dependencies are sorted by alias; sidecars of one function that
	// declare different dependencies contribute each alias once.
	Dependencies []GraphDependency `json:"dependencies"`
}

// GraphSidecar is one connected sidecar stream of a function.
type GraphSidecar struct {
	ID           string    `json:"id"`
	SentVersion  int64     `json:"sentVersion"`
	AckedVersion int64     `json:"ackedVersion"`
	AckError     string    `json:"ackError,omitempty"`
	ConnectedAt  time.Time `json:"connectedAt"`
	// Replica names the control plane replica the stream is open on,
	// when there are several.
	Replica string `json:"replica,omitempty"`
}

// GraphDependency is one edge: a dependency and the provider it resolves
// to now, or why it is unresolved.
type GraphDependency struct {
	Alias    string `json:"alias"`
	Selector string `json:"selector"`
	// Provider is the chosen provider's namespace/name; empty when
	// unresolved.
	Provider   string `json:"provider,omitempty"`
	Unresolved string `json:"unresolved,omitempty"`
	// Split is set for a weighted traffic split: one edge per target,
	// labelled with its share; Provider is then the primary's.
	Split []GraphTarget `json:"split,omitempty"`
}

// GraphTarget is one target of a split dependency: its provider (empty
// when unresolved), declared weight and share of invocations.
type GraphTarget struct {
	Provider   string `json:"provider,omitempty"`
	Weight     int    `json:"weight"`
	Share      int    `json:"share"`
	Unresolved string `json:"unresolved,omitempty"`
}

// GraphProvider is a provider without secret values, with its count of
// ready endpoints.
type GraphProvider struct {
	protocol.ProviderView
	Ready int `json:"ready"`
}

// graph builds the Graph of view v and the connected sidecars (of every
// replica), with the replicas' statuses.
func (s *Server) graph(v *view, sidecars []sidecarInfo, replicas []ReplicaStatus) Graph {
	type fn struct {
		f        *GraphFunction
		consumer registry.Consumer
		deps     []registry.Dependency
		aliases  map[string]bool
	}
	byKey := make(map[string]*fn)
	for _, sc := range sidecars {
		st := sc.status
		c := st.Consumer
		k := registry.Key(c.Namespace, c.Name)
		x := byKey[k]
		if x == nil {
			x = &fn{
				f:        &GraphFunction{Namespace: c.Namespace, Name: c.Name, ServiceAccount: c.ServiceAccount, Labels: maps.Clone(c.Labels)},
				consumer: c,
				aliases:  make(map[string]bool),
			}
			byKey[k] = x
		}
		for _, d := range sc.deps {
			if !x.aliases[d.Alias] {
				x.aliases[d.Alias] = true
				x.deps = append(x.deps, d)
			}
		}
		x.f.Sidecars = append(x.f.Sidecars, GraphSidecar{ID: st.ID, SentVersion: st.SentVersion,
			AckedVersion: st.AckedVersion, AckError: st.AckError, ConnectedAt: st.ConnectedAt, Replica: st.Replica})
	}

	g := Graph{Revision: v.revision, Functions: make([]GraphFunction, 0, len(byKey)), Providers: make([]GraphProvider, 0, len(v.all)), Replicas: replicas}
	for _, x := range byKey {
		sort.Slice(x.f.Sidecars, func(i, j int) bool {
			a, b := x.f.Sidecars[i], x.f.Sidecars[j]
			if a.ID != b.ID {
				return a.ID < b.ID
			}
			return a.Replica < b.Replica
		})
		sort.Slice(x.deps, func(i, j int) bool { return x.deps[i].Alias < x.deps[j].Alias })
		x.f.Dependencies = make([]GraphDependency, 0, len(x.deps))
		for _, d := range x.deps {
			gd := GraphDependency{Alias: d.Alias, Selector: d.SelectorString()}
			b, p, err := registry.ResolveBinding(d, false, func(d registry.Dependency) (*registry.Provider, error) {
				return v.resolve(x.consumer, d)
			})
			var re *registry.ResolveError
			switch {
			case err == nil:
				gd.Provider = p.Key()
				for _, st := range b.Split {
					gt := GraphTarget{Weight: st.Weight, Share: st.Share, Unresolved: st.Unresolved}
					if st.Provider != "" {
						gt.Provider = registry.Key(st.Namespace, st.Provider)
					}
					gd.Split = append(gd.Split, gt)
				}
			case errors.As(err, &re):
				gd.Unresolved = re.Reason
			default:
				gd.Unresolved = err.Error()
			}
			x.f.Dependencies = append(x.f.Dependencies, gd)
		}
		g.Functions = append(g.Functions, *x.f)
	}
	sort.Slice(g.Functions, func(i, j int) bool {
		return registry.Key(g.Functions[i].Namespace, g.Functions[i].Name) < registry.Key(g.Functions[j].Namespace, g.Functions[j].Name)
	})
	for _, p := range v.all {
		g.Providers = append(g.Providers, GraphProvider{ProviderView: protocol.Redact(*p), Ready: len(p.ReadyEndpoints())})
	}
	return g
}

// graphCoalesce is how long the event stream waits after a change before
// it sends the graph, so that a burst (every sidecar acknowledging one
// change) becomes one event.
const graphCoalesce = 100 * time.Millisecond

//go:embed dashboard
var dashboardFiles embed.FS

// dashboardCSP allows the page only its own scripts, styles and API:
// nothing inline, nothing from another origin, no framing.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// dashboardRoutes adds the dashboard page and its data. Every one is for
// admin callers only (adminOnly): the graph shows every namespace.
func (s *Server) dashboardRoutes(mux *http.ServeMux) {
	static, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	files := http.StripPrefix("/dashboard/", http.FileServerFS(static))
	mux.HandleFunc("GET /dashboard/", func(w http.ResponseWriter, r *http.Request) {
		if !s.adminOnly(w, r) {
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /v1/graph", func(w http.ResponseWriter, r *http.Request) {
		if !s.adminOnly(w, r) {
			return
		}
		v := s.current.Load()
		sidecars, replicas := s.allSidecars(r.Context())
		httpapi.WriteJSON(w, http.StatusOK, s.graph(v, sidecars, replicas))
	})
	mux.HandleFunc("GET /v1/graph/events", s.handleGraphEvents)
}

// adminOnly refuses callers that may not see the whole graph
// (docs/security.md, "The dependency graph page"): on `ddi dev` everyone
// who reaches the loopback listener may; on Kubernetes a user whose RBAC
// lets them list providers, dependencysets and pods in every namespace;
// no pod token.
func (s *Server) adminOnly(w http.ResponseWriter, r *http.Request) bool {
	caller, ok := s.caller(w, r)
	if !ok {
		return false
	}
	switch {
	case caller.Admin:
		return true
	case caller.User != "":
		return s.permit(w, r, caller, graphAccess...)
	}
	httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusForbidden, "forbidden",
		"the dependency graph shows every namespace's functions and providers, so only admin callers and users who may list providers, dependencysets and pods in every namespace see it; a sidecar's pod token is neither (see docs/dashboard.md)"))
	return false
}

// handleGraphEvents streams the graph as server-sent events: an event
// "graph" with the whole Graph at once, and again after every change of a
// provider or a sidecar stream (coalesced over graphCoalesce), with a
// comment line as heartbeat.
func (s *Server) handleGraphEvents(w http.ResponseWriter, r *http.Request) {
	if !s.adminOnly(w, r) {
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
		_ = rc.SetWriteDeadline(time.Time{})
		return nil
	}
	ctx := r.Context()
	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	// With replicas, the other replicas' sidecars come from the shared
	// poll (peerPoll): a change there wakes this stream like a local one.
	var peersChanged <-chan struct{}
	if s.replicas != nil {
		defer s.subscribePeers()()
	}
	for {
		v := s.current.Load()
		s.mu.Lock()
		changed := s.sessChange
		s.mu.Unlock()
		sidecars := s.localSidecars()
		var replicas []ReplicaStatus
		if s.replicas != nil {
			var res peerResult
			res, peersChanged = s.peersNow(ctx)
			sidecars, replicas = s.merge(sidecars, res)
		}
		b, err := json.Marshal(s.graph(v, sidecars, replicas))
		if err != nil {
			return
		}
		msg := make([]byte, 0, len(b)+32)
		msg = append(msg, "event: graph\ndata: "...)
		msg = append(msg, b...)
		msg = append(msg, "\n\n"...)
		if write(msg) != nil {
			return
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.stopping:
				return
			case <-heartbeat.C:
				if write([]byte(": heartbeat\n\n")) != nil {
					return
				}
			case <-v.changed:
				break wait
			case <-changed:
				break wait
			case <-peersChanged:
				break wait
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		case <-time.After(graphCoalesce):
		}
	}
}

// sessionsChanged wakes the graph event streams. The caller holds s.mu.
func (s *Server) sessionsChanged() {
	close(s.sessChange)
	s.sessChange = make(chan struct{})
}
