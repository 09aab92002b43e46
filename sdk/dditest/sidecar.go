// Package dditest provides a fake ddi sidecar for tests of code that uses
// the ddi SDK: an httptest server that serves bindings the test sets, pushes
// changes to watchers, accepts run-time registrations and proxies invokes.
// It is for tests only and must not be imported by production code.
package dditest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	ddi "ddi.dev/ddi/sdk"
)

// Sidecar is a fake sidecar. Create it with NewSidecar and Close it when
// done. It is safe for concurrent use.
type Sidecar struct {
	// URL is the base URL of the fake sidecar, for Client.Addr or DDI_ADDR.
	URL string

	srv *httptest.Server

	mu         sync.Mutex
	bindings   map[string]ddi.Binding
	unresolved map[string]ddi.Unresolved
	providers  map[string]ddi.Provider
	revision   int64
	version    int64
	notReady   bool
	watchers   map[chan event]struct{}
	requests   map[string]int
}

type event struct {
	kind string
	id   int64
	data []byte
}

// NewSidecar starts a fake sidecar serving bindings (whose revisions it
// assigns).
func NewSidecar(bindings ...ddi.Binding) *Sidecar {
	s := &Sidecar{
		bindings:   map[string]ddi.Binding{},
		unresolved: map[string]ddi.Unresolved{},
		providers:  map[string]ddi.Provider{},
		watchers:   map[chan event]struct{}{},
		requests:   map[string]int{},
	}
	for _, b := range bindings {
		s.Bind(b)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/bindings", s.list)
	mux.HandleFunc("GET /v1/bindings/{name}", s.get)
	mux.HandleFunc("GET /v1/watch", s.watch)
	mux.HandleFunc("PUT /v1/providers/{name}", s.register)
	mux.HandleFunc("DELETE /v1/providers/{name}", s.deregister)
	mux.HandleFunc("/v1/invoke/{name}/{path...}", s.invoke)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.Method+" "+r.URL.Path]++
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL
	return s
}

// Close ends every watch and shuts the fake sidecar down.
func (s *Sidecar) Close() {
	s.mu.Lock()
	for ch := range s.watchers {
		close(ch)
		delete(s.watchers, ch)
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Client returns a Client aimed at the fake sidecar.
func (s *Sidecar) Client() *ddi.Client {
	return &ddi.Client{Addr: s.URL}
}

// Bind sets (or replaces) the binding b.Name, gives it the next revision,
// pushes it to watchers and returns the revision. Endpoints without a Ready
// flag are taken as given.
func (s *Sidecar) Bind(b ddi.Binding) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revision++
	s.version++
	b.Revision = s.revision
	if b.Namespace == "" {
		b.Namespace = "default"
	}
	if b.Selector == "" {
		b.Selector = b.Provider
	}
	s.bindings[b.Name] = b
	delete(s.unresolved, b.Name)
	data, _ := json.Marshal(b)
	s.broadcast(event{kind: "binding", id: b.Revision, data: data})
	return b.Revision
}

// Update changes the binding name with fn and pushes the result, as a
// provider switch or a credential rotation would. It panics if name is not
// bound.
func (s *Sidecar) Update(name string, fn func(*ddi.Binding)) int64 {
	s.mu.Lock()
	b, ok := s.bindings[name]
	s.mu.Unlock()
	if !ok {
		panic(fmt.Sprintf("dditest: Update of %q, which is not bound", name))
	}
	b.Config = clone(b.Config)
	b.Secret = clone(b.Secret)
	b.Endpoints = append([]ddi.Endpoint(nil), b.Endpoints...)
	fn(&b)
	return s.Bind(b)
}

// Unbind makes name an unresolved dependency with the given reason and
// tells watchers. A name never bound becomes declared but unresolved.
func (s *Sidecar) Unbind(name, selector, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revision++
	s.version++
	delete(s.bindings, name)
	u := ddi.Unresolved{Name: name, Selector: selector, Reason: reason}
	s.unresolved[name] = u
	data, _ := json.Marshal(u)
	s.broadcast(event{kind: "unbound", id: s.revision, data: data})
}

// SetReady sets what /readyz answers (ready by default).
func (s *Sidecar) SetReady(ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notReady = !ready
}

// Providers returns the providers registered at run time, by name.
func (s *Sidecar) Providers() map[string]ddi.Provider {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]ddi.Provider, len(s.providers))
	for k, v := range s.providers {
		out[k] = v
	}
	return out
}

// Requests returns how many requests the fake sidecar served for "METHOD
// /path".
func (s *Sidecar) Requests(methodPath string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[methodPath]
}

// broadcast sends ev to every watcher; s.mu must be held. A watcher too slow
// to take it is disconnected (its client reconnects and resyncs).
func (s *Sidecar) broadcast(ev event) {
	for ch := range s.watchers {
		select {
		case ch <- ev:
		default:
			close(ch)
			delete(s.watchers, ch)
		}
	}
}

func (s *Sidecar) list(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := ddi.Snapshot{Bindings: []ddi.Binding{}, Unresolved: []ddi.Unresolved{}, Version: s.version}
	for _, b := range s.bindings {
		snap.Bindings = append(snap.Bindings, b)
	}
	for _, u := range s.unresolved {
		snap.Unresolved = append(snap.Unresolved, u)
	}
	sort.Slice(snap.Bindings, func(i, j int) bool { return snap.Bindings[i].Name < snap.Bindings[j].Name })
	sort.Slice(snap.Unresolved, func(i, j int) bool { return snap.Unresolved[i].Name < snap.Unresolved[j].Name })
	writeJSON(w, http.StatusOK, snap)
}

func (s *Sidecar) get(w http.ResponseWriter, r *http.Request) {
	b, p := s.lookup(r.PathValue("name"))
	if p != nil {
		writeProblem(w, p)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Sidecar) lookup(name string) (ddi.Binding, *ddi.Problem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.bindings[name]; ok {
		return b, nil
	}
	if u, ok := s.unresolved[name]; ok {
		return ddi.Binding{}, &ddi.Problem{
			Type: ddi.ProblemBase + ddi.KindUnresolved, Title: "Dependency unresolved", Status: http.StatusNotFound,
			Detail:     fmt.Sprintf("dependency %q (selector %q) is unresolved: %s", name, u.Selector, u.Reason),
			Dependency: name, Selector: u.Selector,
		}
	}
	return ddi.Binding{}, &ddi.Problem{
		Type: ddi.ProblemBase + ddi.KindUnknownDependency, Title: "Unknown dependency", Status: http.StatusNotFound,
		Detail:     fmt.Sprintf("dependency %q is not declared by this function", name),
		Dependency: name,
	}
}

func (s *Sidecar) watch(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "no flusher", http.StatusInternalServerError)
		return
	}
	ch := make(chan event, 256)
	s.mu.Lock()
	var initial []event
	for _, b := range s.bindings {
		data, _ := json.Marshal(b)
		initial = append(initial, event{kind: "binding", id: b.Revision, data: data})
	}
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if _, ok := s.watchers[ch]; ok {
			delete(s.watchers, ch)
		}
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	for _, ev := range initial {
		writeEvent(w, ev)
	}
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		case ev, ok := <-ch:
			if !ok {
				return
			}
			writeEvent(w, ev)
			fl.Flush()
		}
	}
}

func writeEvent(w http.ResponseWriter, ev event) {
	fmt.Fprintf(w, "event: %s\nid: %d\ndata: %s\n\n", ev.kind, ev.id, ev.data)
}

type providerBody struct {
	Type      string            `json:"type"`
	Version   string            `json:"version,omitempty"`
	Endpoints []ddi.Endpoint    `json:"endpoints,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Config    map[string]string `json:"config,omitempty"`
	TTL       string            `json:"ttl,omitempty"`
}

func (s *Sidecar) register(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var body providerBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeProblem(w, &ddi.Problem{Type: ddi.ProblemBase + "malformed-json", Title: "Bad Request", Status: http.StatusBadRequest, Detail: err.Error()})
		return
	}
	if body.Type == "" {
		writeProblem(w, &ddi.Problem{Type: ddi.ProblemBase + "invalid", Title: "Bad Request", Status: http.StatusBadRequest, Detail: "type: is required", Field: "type"})
		return
	}
	if body.TTL != "" {
		if d, err := time.ParseDuration(body.TTL); err != nil || d < time.Second || d > 24*time.Hour {
			writeProblem(w, &ddi.Problem{Type: ddi.ProblemBase + "invalid", Title: "Bad Request", Status: http.StatusBadRequest, Detail: "ttl: must be a duration between 1s and 24h", Field: "ttl"})
			return
		}
	}
	p := ddi.Provider{Namespace: "default", Name: name, Type: ddi.CanonicalType(body.Type), Version: body.Version, Labels: body.Labels, Config: body.Config}
	for _, e := range body.Endpoints {
		p.Endpoints = append(p.Endpoints, ddi.Endpoint{URL: e.URL, Ready: true})
	}
	s.mu.Lock()
	_, existed := s.providers[name]
	s.revision++
	p.Revision = s.revision
	s.providers[name] = p
	s.mu.Unlock()
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	writeJSON(w, status, p)
}

func (s *Sidecar) deregister(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	_, ok := s.providers[name]
	delete(s.providers, name)
	s.mu.Unlock()
	if !ok {
		writeProblem(w, &ddi.Problem{Type: ddi.ProblemBase + "not-found", Title: "Not Found", Status: http.StatusNotFound,
			Detail: fmt.Sprintf("provider %q was not registered by this sidecar", name)})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sidecar) invoke(w http.ResponseWriter, r *http.Request) {
	b, p := s.lookup(r.PathValue("name"))
	if p != nil {
		writeProblem(w, p)
		return
	}
	target, err := url.Parse(b.Endpoint())
	if err != nil || target.Host == "" {
		writeProblem(w, &ddi.Problem{Type: ddi.ProblemBase + "no-endpoint", Title: "Service Unavailable", Status: http.StatusServiceUnavailable,
			Detail: fmt.Sprintf("dependency %q has no ready endpoint", b.Name), Dependency: b.Name})
		return
	}
	path := "/" + r.PathValue("path")
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme = target.Scheme
		pr.Out.URL.Host = target.Host
		pr.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + path
		pr.Out.URL.RawPath = ""
		pr.Out.Host = target.Host
	}}
	proxy.ServeHTTP(w, r)
}

func (s *Sidecar) readyz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	notReady, version := s.notReady, s.version
	s.mu.Unlock()
	if notReady {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "detail": "no snapshot yet"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true, "connected": true, "snapshotVersion": version})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, p *ddi.Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func clone(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
