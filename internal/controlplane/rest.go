package controlplane

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// SidecarList is the answer of GET /v1/sidecars (protocol.SidecarList).
type SidecarList = protocol.SidecarList

func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/providers", s.handleList)
	mux.HandleFunc("GET /v1/providers/{namespace}/{name}", s.handleGet)
	mux.HandleFunc("PUT /v1/providers/{namespace}/{name}", s.handlePut)
	mux.HandleFunc("DELETE /v1/providers/{namespace}/{name}", s.handleDelete)
	mux.HandleFunc("POST /v1/providers/{namespace}/{name}/renew", s.handleRenew)
	mux.HandleFunc("POST /v1/resolve", s.handleResolve)
	mux.HandleFunc("POST /v1/explain", s.handleExplain)
	mux.HandleFunc("GET /v1/version", s.handleVersion)
	mux.HandleFunc("GET /v1/sidecars", func(w http.ResponseWriter, r *http.Request) {
		caller, ok := s.caller(w, r)
		if !ok {
			return
		}
		if caller.User != "" {
			if !s.permit(w, r, caller, sidecarsAccess...) {
				return
			}
			caller = Caller{Admin: true} // every pod's streams, read only
		}
		if !caller.Admin {
			// A sidecar sees its own pod's streams on this replica.
			httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sidecars": s.sidecars(caller)})
			return
		}
		all, replicas := s.allSidecars(r.Context())
		list := make([]protocol.SidecarStatus, len(all))
		for i, sc := range all {
			list[i] = sc.status
		}
		sort.Slice(list, func(i, j int) bool {
			if list[i].ID != list[j].ID {
				return list[i].ID < list[j].ID
			}
			return list[i].Replica < list[j].Replica
		})
		httpapi.WriteJSON(w, http.StatusOK, SidecarList{Sidecars: list, Replicas: replicas})
	})
	mux.HandleFunc("GET "+ReplicaPath, s.handleReplica)
	// Everything else: a problem document like every other answer, not
	// the mux's plain text.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusNotFound, "not-found",
			"no route for "+r.Method+" "+r.URL.Path+": see docs/kubernetes.md and docs/protocol.md for the control plane's routes"))
	})
	mux.HandleFunc("POST "+protocol.StreamPath, s.handleStream)
	mux.HandleFunc("POST "+protocol.AckPath, s.handleAck)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.ready:
			httpapi.WriteJSON(w, http.StatusOK, map[string]any{"ready": true, "revision": s.current.Load().revision})
		default:
			httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "detail": "store not listed yet"})
		}
	})
}

// caller returns who sends r, or writes the refusal and returns false.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) (Caller, bool) {
	c, err := s.auth.Caller(r.Context(), r)
	if err != nil {
		httpapi.WriteProblem(w, authProblem(err))
		return Caller{}, false
	}
	return c, true
}

// permit reports whether the user caller may do every access, or writes
// the refusal (403 naming the first access refused, 503 when the API
// server could not answer) and returns false. A caller that is no user
// is refused: permit is only for users.
func (s *Server) permit(w http.ResponseWriter, r *http.Request, c Caller, as ...Access) bool {
	if c.User == "" || c.Allowed == nil {
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusForbidden, "forbidden", "this route needs a user's Kubernetes permissions"))
		return false
	}
	for _, a := range as {
		ok, err := c.Allowed(r.Context(), a)
		if err != nil {
			httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusServiceUnavailable, "authorization-unavailable",
				"could not ask the Kubernetes API server whether "+c.User+" may "+a.String()+": "+err.Error()+"; retry"))
			return false
		}
		if !ok {
			httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusForbidden, "forbidden",
				c.User+" may not "+a.String()+" (Kubernetes RBAC), which this route needs; see docs/security.md for what each route asks"))
			return false
		}
	}
	return true
}

// readable refuses a sidecar that asks for another namespace's providers.
func readable(c Caller, ns string) *httpapi.Problem {
	if c.Admin || ns == c.Consumer.Namespace {
		return nil
	}
	return httpapi.NewProblem(http.StatusForbidden, "forbidden",
		"a sidecar of namespace "+c.Consumer.Namespace+" may read only its own namespace's providers, not "+ns)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.caller(w, r)
	if !ok {
		return
	}
	ns := r.URL.Query().Get("namespace")
	switch {
	case caller.User != "":
		if ns != "" {
			if err := registry.ValidateName("namespace", ns); err != nil {
				httpapi.WriteProblem(w, httpapi.ValidationProblem(err))
				return
			}
		}
		if !s.permit(w, r, caller, listProviders(ns)) {
			return
		}
	case !caller.Admin && caller.Consumer.Namespace == "":
		// Neither admin, user nor sidecar: nothing to read.
		httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusForbidden, "forbidden", "the caller has no namespace"))
		return
	case !caller.Admin && ns == "":
		ns = caller.Consumer.Namespace
		fallthrough
	default:
		if prob := readable(caller, ns); ns != "" && prob != nil {
			httpapi.WriteProblem(w, prob)
			return
		}
	}
	list, rev, err := s.store.List(r.Context())
	if err != nil {
		httpapi.WriteProblem(w, storeProblem(err, ""))
		return
	}
	out := make([]protocol.ProviderView, 0, len(list))
	for _, p := range list {
		if ns == "" || p.Namespace == ns {
			out = append(out, protocol.Redact(p))
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"providers": out, "revision": rev})
}

func pathKey(r *http.Request) (ns, name string, p *httpapi.Problem) {
	ns, name = r.PathValue("namespace"), r.PathValue("name")
	if err := registry.ValidateName("namespace", ns); err != nil {
		return "", "", httpapi.ValidationProblem(err)
	}
	if err := registry.ValidateName("name", name); err != nil {
		return "", "", httpapi.ValidationProblem(err)
	}
	return ns, name, nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	ns, name, prob := pathKey(r)
	if prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	caller, ok := s.caller(w, r)
	if !ok {
		return
	}
	if caller.User != "" {
		if !s.permit(w, r, caller, getProvider(ns, name)) {
			return
		}
	} else if prob := readable(caller, ns); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	p, err := s.store.Get(r.Context(), ns, name)
	if err != nil {
		httpapi.WriteProblem(w, storeProblem(err, registry.Key(ns, name)))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, protocol.Redact(p))
}

func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	ns, name, prob := pathKey(r)
	if prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	var p registry.Provider
	if prob := httpapi.DecodeJSON(w, r, &p); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	if p.Namespace != "" && p.Namespace != ns {
		httpapi.WriteProblem(w, httpapi.FieldProblem("namespace", "namespace "+strconv.Quote(p.Namespace)+" in the body differs from "+strconv.Quote(ns)+" in the path"))
		return
	}
	if p.Name != "" && p.Name != name {
		httpapi.WriteProblem(w, httpapi.FieldProblem("name", "name "+strconv.Quote(p.Name)+" in the body differs from "+strconv.Quote(name)+" in the path"))
		return
	}
	p.Namespace, p.Name = ns, name
	registry.NormalizeProvider(&p)
	if err := registry.ValidateProvider(&p); err != nil {
		httpapi.WriteProblem(w, httpapi.ValidationProblem(err))
		return
	}
	if err := s.auth.AuthorizeWrite(r.Context(), r, &p); err != nil {
		httpapi.WriteProblem(w, authProblem(err))
		return
	}
	// A provider with an owner is a run-time registration: it stays in
	// its namespace (docs/resolution.md, "Namespaces").
	if p.Owner != "" {
		if err := registry.ValidateRegistration(&p); err != nil {
			httpapi.WriteProblem(w, httpapi.ValidationProblem(err))
			return
		}
	}
	if prob := s.admitRegistration(&p); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	ctx := r.Context()
	status := http.StatusOK
	var (
		stored registry.Provider
		err    error
	)
	if p.Revision != 0 {
		stored, err = s.store.Update(ctx, p)
	} else {
		// Create or replace: retry when another writer races us.
		for attempt := 0; attempt < 5; attempt++ {
			stored, err = s.store.Create(ctx, p)
			if err == nil {
				status = http.StatusCreated
				break
			}
			if !errors.Is(err, registry.ErrExists) {
				break
			}
			var cur registry.Provider
			cur, err = s.store.Get(ctx, ns, name)
			if errors.Is(err, registry.ErrNotFound) {
				continue
			}
			if err != nil {
				break
			}
			// The provider appeared after the authorisation: a run-time
			// registration replaces only its own owner's provider. The
			// update below is conditional on cur's revision, so this check
			// holds for what it replaces.
			if p.Owner != "" && cur.Owner != p.Owner {
				err = fmt.Errorf("%w: provider %s exists and belongs to %s", registry.ErrExists, p.Key(), ownerText(cur.Owner))
				break
			}
			p.Revision = cur.Revision
			stored, err = s.store.Update(ctx, p)
			p.Revision = 0
			if !errors.Is(err, registry.ErrConflict) && !errors.Is(err, registry.ErrNotFound) {
				break
			}
		}
	}
	if err != nil {
		httpapi.WriteProblem(w, storeProblem(err, p.Key()))
		return
	}
	s.log.Info("provider stored", "provider", stored.Key(), "type", stored.Type, "version", stored.Version, "revision", stored.Revision, "owner", stored.Owner)
	httpapi.WriteJSON(w, status, protocol.Redact(stored))
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	ns, name, prob := pathKey(r)
	if prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	var rev int64
	if q := r.URL.Query().Get("revision"); q != "" {
		var err error
		if rev, err = strconv.ParseInt(q, 10, 64); err != nil || rev < 0 {
			httpapi.WriteProblem(w, httpapi.FieldProblem("revision", "revision "+strconv.Quote(q)+" is not a non-negative integer"))
			return
		}
	}
	if prob := s.authorizeExisting(r, ns, name); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	if err := s.store.Delete(r.Context(), ns, name, rev); err != nil {
		httpapi.WriteProblem(w, storeProblem(err, registry.Key(ns, name)))
		return
	}
	s.log.Info("provider deleted", "provider", registry.Key(ns, name))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	ns, name, prob := pathKey(r)
	if prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	var body struct {
		TTL registry.Duration `json:"ttl"`
	}
	if prob := httpapi.DecodeJSON(w, r, &body); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	if err := registry.ValidateTTL(time.Duration(body.TTL)); err != nil {
		httpapi.WriteProblem(w, httpapi.ValidationProblem(err))
		return
	}
	if prob := s.authorizeExisting(r, ns, name); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	p, err := s.store.Renew(r.Context(), ns, name, time.Duration(body.TTL))
	if err != nil {
		httpapi.WriteProblem(w, storeProblem(err, registry.Key(ns, name)))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, protocol.Redact(p))
}

// ResolveRequest is the body of POST /v1/resolve.
type ResolveRequest struct {
	Consumer   registry.Consumer `json:"consumer"`
	Dependency string            `json:"dependency"`
}

func (s *Server) handleResolve(w http.ResponseWriter, r *http.Request) {
	req, dep, _, ok := s.resolveRequest(w, r)
	if !ok {
		return
	}
	v := s.current.Load()
	b, p, err := registry.ResolveBinding(dep, false, func(d registry.Dependency) (*registry.Provider, error) {
		return registry.Resolve(req.Consumer, d, v.candidates(d.Selector, req.Consumer.Namespace))
	})
	if err != nil {
		prob := httpapi.NewProblem(http.StatusNotFound, "unresolved", err.Error())
		prob.Dependency, prob.Selector = dep.Alias, dep.SelectorString()
		httpapi.WriteProblem(w, prob)
		return
	}
	b.Revision = p.Revision
	httpapi.WriteJSON(w, http.StatusOK, b)
}

// ExplainResponse is the answer of POST /v1/explain.
type ExplainResponse struct {
	registry.Explanation
	// Revision is the store revision the explanation reflects.
	Revision int64 `json:"revision"`
}

// handleExplain answers POST /v1/explain: the body of /v1/resolve, and
// every candidate with the rule that admitted or rejected it. It answers
// 200 for an unresolved dependency too (Unresolved says why). A sidecar
// caller sees only its own namespace's candidates and those exported to
// it; the rest are counted in Hidden.
func (s *Server) handleExplain(w http.ResponseWriter, r *http.Request) {
	req, dep, caller, ok := s.resolveRequest(w, r)
	if !ok {
		return
	}
	v := s.current.Load()
	ex := registry.ExplainDependency(req.Consumer, dep, func(sel registry.Selector) []*registry.Provider {
		return v.candidates(sel, req.Consumer.Namespace)
	})
	switch {
	case caller.Admin:
	case caller.User != "":
		// A user who may list every namespace's providers sees every
		// candidate; others see what a sidecar of the consumer's
		// namespace would.
		if all, err := caller.Allowed(r.Context(), listProviders("")); err != nil || !all {
			ex.Visible(req.Consumer.Namespace)
		}
	default:
		ex.Visible(caller.Consumer.Namespace)
	}
	httpapi.WriteJSON(w, http.StatusOK, ExplainResponse{Explanation: ex, Revision: v.revision})
}

// resolveRequest decodes and authorises the body of /v1/resolve and
// /v1/explain, or writes the problem and returns false. A sidecar resolves
// for its own function only.
func (s *Server) resolveRequest(w http.ResponseWriter, r *http.Request) (ResolveRequest, registry.Dependency, Caller, bool) {
	var req ResolveRequest
	if prob := httpapi.DecodeJSON(w, r, &req); prob != nil {
		httpapi.WriteProblem(w, prob)
		return req, registry.Dependency{}, Caller{}, false
	}
	caller, ok := s.caller(w, r)
	if !ok {
		return req, registry.Dependency{}, Caller{}, false
	}
	if caller.User != "" {
		// A user resolves for any consumer of a namespace whose
		// providers they may list: the answer shows no more than a
		// sidecar of that namespace sees.
		ns := req.Consumer.Namespace
		if ns == "" {
			ns = registry.DefaultNamespace
		}
		if err := registry.ValidateName("consumer.namespace", ns); err != nil {
			httpapi.WriteProblem(w, httpapi.ValidationProblem(err))
			return req, registry.Dependency{}, Caller{}, false
		}
		if !s.permit(w, r, caller, listProviders(ns)) {
			return req, registry.Dependency{}, Caller{}, false
		}
	} else if !caller.Admin {
		// A sidecar resolves for its own function only, as the control
		// plane knows it (labels and service account included).
		if (req.Consumer.Name != "" && req.Consumer.Name != caller.Consumer.Name) ||
			(req.Consumer.Namespace != "" && req.Consumer.Namespace != caller.Consumer.Namespace) {
			httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusForbidden, "forbidden",
				"a sidecar resolves only for its own function "+registry.Key(caller.Consumer.Namespace, caller.Consumer.Name)+"; leave consumer empty or name it"))
			return req, registry.Dependency{}, Caller{}, false
		}
		req.Consumer = caller.Consumer
	}
	if req.Consumer.Namespace == "" {
		req.Consumer.Namespace = registry.DefaultNamespace
	}
	if err := registry.ValidateName("consumer.name", req.Consumer.Name); err != nil {
		httpapi.WriteProblem(w, httpapi.ValidationProblem(err))
		return req, registry.Dependency{}, Caller{}, false
	}
	dep, err := registry.ParseDependency(req.Dependency)
	if err != nil {
		httpapi.WriteProblem(w, httpapi.FieldProblem("dependency", err.Error()))
		return req, registry.Dependency{}, Caller{}, false
	}
	return req, dep, caller, true
}

func ownerText(owner string) string {
	if owner == "" {
		return "a declaration"
	}
	return owner
}

func storeProblem(err error, key string) *httpapi.Problem {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return httpapi.NewProblem(http.StatusNotFound, "not-found", "provider "+key+" does not exist")
	case errors.Is(err, registry.ErrConflict):
		return httpapi.NewProblem(http.StatusConflict, "conflict", "provider "+key+" changed since the revision you sent: get it again and retry")
	case errors.Is(err, registry.ErrExists):
		return httpapi.NewProblem(http.StatusConflict, "exists", "provider "+key+" already exists")
	}
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		return httpapi.ValidationProblem(err)
	}
	return httpapi.NewProblem(http.StatusServiceUnavailable, "store-unavailable", "the registry store failed: "+err.Error())
}

func authProblem(err error) *httpapi.Problem {
	switch {
	case errors.Is(err, ErrThrottled):
		return httpapi.NewProblem(http.StatusTooManyRequests, "throttled", err.Error()+": retry in a second")
	case errors.Is(err, ErrUnauthenticated):
		return httpapi.NewProblem(http.StatusUnauthorized, "unauthenticated", err.Error())
	case errors.Is(err, ErrForbidden):
		return httpapi.NewProblem(http.StatusForbidden, "forbidden", err.Error())
	}
	return httpapi.ValidationProblem(err)
}

// authorizeExisting asks the Authenticator whether r may change the stored
// provider ns/name (or, when it does not exist, a provider of that name).
func (s *Server) authorizeExisting(r *http.Request, ns, name string) *httpapi.Problem {
	target := registry.Provider{Namespace: ns, Name: name}
	if cur, err := s.store.Get(r.Context(), ns, name); err == nil {
		target = cur
	}
	if err := s.auth.AuthorizeWrite(r.Context(), r, &target); err != nil {
		return authProblem(err)
	}
	return nil
}
