package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/registry"
)

// MaxRegistrations bounds the run-time providers one sidecar may hold. The
// control plane bounds each owner the same way
// (controlplane.MaxRegistrationsPerOwner).
const MaxRegistrations = 64

// registerRequest is the body of PUT /v1/providers/{name}.
type registerRequest struct {
	Type      string             `json:"type"`
	Version   string             `json:"version,omitempty"`
	Labels    map[string]string  `json:"labels,omitempty"`
	Endpoints []registerEndpoint `json:"endpoints,omitempty"`
	Config    map[string]string  `json:"config,omitempty"`
	Secret    map[string]string  `json:"secret,omitempty"`
	Scope     registry.Scope     `json:"scope,omitempty"`
	TTL       json.RawMessage    `json:"ttl,omitempty"`
}

type registerEndpoint struct {
	URL   string `json:"url"`
	Ready *bool  `json:"ready,omitempty"` // default true
}

// registrationOwner is the owner a sidecar records on its run-time
// registrations: "sidecar:NAMESPACE/NAME@HOST", the function it serves and
// the host it runs on (the pod's name on Kubernetes, the machine locally).
// Unlike the sidecar id, which is new in every process, it survives a
// restart of the sidecar: a restarted sidecar takes over the registrations
// its predecessor left behind instead of being refused until their leases
// end, while another function's sidecar (or the same function's on another
// host) is still refused with 409. Replicas of one function on one host
// share it, so they may replace each other's registrations of a name, as a
// restart does. On Kubernetes the control plane records the pod instead
// (pod:NAMESPACE/NAME/UID, see podOwned) and checks it itself.
func registrationOwner(c registry.Consumer, host string) string {
	if host == "" {
		host = "localhost"
	}
	return "sidecar:" + c.Namespace + "/" + c.Name + "@" + host
}

// podOwned reports whether owner names a pod, as the control plane of a
// Kubernetes installation records it for a registration (kube.PodOwner).
// That control plane authenticates the pod behind every write and lets a
// pod change only its own registrations; the sidecar, which may not know
// its pod's uid, leaves that decision to it.
func podOwned(owner string) bool { return strings.HasPrefix(owner, "pod:") }

// registration is one run-time provider this sidecar keeps alive.
type registration struct {
	provider registry.Provider // as sent, so an expired lease can be re-created
	ttl      time.Duration
	owner    string // the owner the control plane recorded
	stop     context.CancelFunc
	done     chan struct{}
}

// registrar forwards run-time registrations to the control plane in the
// consumer's namespace and owns one renewal goroutine per registration.
type registrar struct {
	client     *client.Client
	namespace  string
	owner      string
	defaultTTL time.Duration
	metrics    *metrics
	log        *slog.Logger

	writeMu sync.Mutex // serialises forwarding, so one name has one writer
	mu      sync.Mutex // guards regs and closed
	regs    map[string]*registration
	closed  bool
}

func newRegistrar(cl *client.Client, namespace, owner string, ttl time.Duration, m *metrics, log *slog.Logger) *registrar {
	return &registrar{client: cl, namespace: namespace, owner: owner, defaultTTL: ttl, metrics: m, log: log, regs: map[string]*registration{}}
}

// handleRegister validates everything before anything reaches the control
// plane.
func (s *Sidecar) handleRegister(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := registry.ValidateName("name", name); err != nil {
		httpapi.WriteProblem(w, httpapi.ValidationProblem(err))
		return
	}
	var req registerRequest
	if prob := httpapi.DecodeJSON(w, r, &req); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	p, ttl, prob := s.regs.provider(name, &req)
	if prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	stored, created, prob := s.regs.register(r.Context(), p, ttl)
	if prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	stored.Secret = nil
	httpapi.WriteJSON(w, status, stored)
}

func (s *Sidecar) handleDeregister(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := registry.ValidateName("name", name); err != nil {
		httpapi.WriteProblem(w, httpapi.ValidationProblem(err))
		return
	}
	if prob := s.regs.deregister(r.Context(), name); prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// provider builds and validates the provider a request describes.
func (rg *registrar) provider(name string, req *registerRequest) (registry.Provider, time.Duration, *httpapi.Problem) {
	ttl := rg.defaultTTL
	if len(req.TTL) > 0 && string(req.TTL) != "null" {
		var d registry.Duration
		if err := json.Unmarshal(req.TTL, &d); err != nil {
			return registry.Provider{}, 0, httpapi.FieldProblem("ttl", "ttl "+err.Error())
		}
		ttl = time.Duration(d)
	}
	if err := registry.ValidateTTL(ttl); err != nil {
		return registry.Provider{}, 0, httpapi.ValidationProblem(err)
	}
	p := registry.Provider{
		Namespace: rg.namespace,
		Name:      name,
		Type:      req.Type,
		Version:   req.Version,
		Labels:    req.Labels,
		Config:    req.Config,
		Secret:    req.Secret,
		Scope:     req.Scope,
		Lease:     &registry.Lease{TTL: registry.Duration(ttl)},
		Owner:     rg.owner,
	}
	for _, e := range req.Endpoints {
		ready := e.Ready == nil || *e.Ready
		p.Endpoints = append(p.Endpoints, registry.Endpoint{URL: e.URL, Ready: ready})
	}
	registry.NormalizeProvider(&p)
	if err := registry.ValidateProvider(&p); err != nil {
		return registry.Provider{}, 0, httpapi.ValidationProblem(err)
	}
	// What the control plane checks of every run-time registration
	// (its scope, reserved labels), checked here before it is forwarded.
	if err := registry.ValidateRegistration(&p); err != nil {
		return registry.Provider{}, 0, httpapi.ValidationProblem(err)
	}
	return p, ttl, nil
}

// register creates or replaces p at the control plane and keeps its lease
// renewed. A name held by a declared provider, or by another owner's
// unexpired registration (registrationOwner), is refused with 409; one
// owned by a pod is forwarded, conditional on its revision, for the control
// plane to decide (podOwned).
func (rg *registrar) register(ctx context.Context, p registry.Provider, ttl time.Duration) (client.Provider, bool, *httpapi.Problem) {
	rg.writeMu.Lock()
	defer rg.writeMu.Unlock()
	rg.mu.Lock()
	closed, old := rg.closed, rg.regs[p.Name]
	count := len(rg.regs)
	rg.mu.Unlock()
	switch {
	case closed:
		return client.Provider{}, false, httpapi.NewProblem(http.StatusServiceUnavailable, "shutting-down", "the sidecar is shutting down and takes no new registrations")
	case old == nil && count >= MaxRegistrations:
		return client.Provider{}, false, httpapi.NewProblem(http.StatusConflict, "too-many-registrations",
			fmt.Sprintf("this sidecar already holds %d registrations, the most it allows; delete one first", MaxRegistrations))
	}
	if old == nil {
		cur, err := rg.client.GetProvider(ctx, p.Namespace, p.Name)
		switch {
		case err == nil && cur.Lease == nil:
			prob := httpapi.NewProblem(http.StatusConflict, "name-taken",
				fmt.Sprintf("provider %s is declared (not registered at run time), so a sidecar may not replace it: pick another name", p.Key()))
			prob.Field = "name"
			return client.Provider{}, false, prob
		case err == nil && cur.Owner != rg.owner && !podOwned(cur.Owner):
			prob := httpapi.NewProblem(http.StatusConflict, "name-taken",
				fmt.Sprintf("provider %s is registered by %s until its lease expires at %s: pick another name", p.Key(), cur.Owner, cur.Lease.ExpiresAt.UTC().Format(time.RFC3339)))
			prob.Field = "name"
			return client.Provider{}, false, prob
		case err == nil:
			p.Revision = cur.Revision
		case client.StatusCode(err) != http.StatusNotFound:
			return client.Provider{}, false, upstreamProblem(err)
		}
	} else {
		rg.stopRenewer(old)
	}
	stored, created, err := rg.client.PutProvider(ctx, p)
	if err != nil {
		if old != nil {
			rg.startRenewer(p.Name, old)
		}
		return client.Provider{}, false, upstreamProblem(err)
	}
	p.Revision = 0
	reg := &registration{provider: p, ttl: ttl, owner: stored.Owner}
	rg.mu.Lock()
	if rg.closed {
		rg.mu.Unlock()
		// Shutdown began while we forwarded: do not leave it behind.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = rg.client.DeleteProvider(dctx, p.Namespace, p.Name, 0)
		cancel()
		return client.Provider{}, false, httpapi.NewProblem(http.StatusServiceUnavailable, "shutting-down", "the sidecar is shutting down and takes no new registrations")
	}
	rg.regs[p.Name] = reg
	rg.metrics.registrations.Set(float64(len(rg.regs)))
	rg.mu.Unlock()
	rg.startRenewer(p.Name, reg)
	rg.log.Info("provider registered", "provider", p.Key(), "type", p.Type, "ttl", ttl, "created", created)
	return stored, created, nil
}

// deregister deletes a registration this sidecar made.
func (rg *registrar) deregister(ctx context.Context, name string) *httpapi.Problem {
	rg.writeMu.Lock()
	defer rg.writeMu.Unlock()
	rg.mu.Lock()
	reg := rg.regs[name]
	rg.mu.Unlock()
	if reg == nil {
		prob := httpapi.NewProblem(http.StatusNotFound, "not-registered",
			fmt.Sprintf("this sidecar has not registered a provider named %q", name))
		prob.Field = "name"
		return prob
	}
	rg.stopRenewer(reg)
	err := rg.client.DeleteProvider(ctx, rg.namespace, name, 0)
	if err != nil && client.StatusCode(err) != http.StatusNotFound {
		rg.startRenewer(name, reg)
		return upstreamProblem(err)
	}
	rg.mu.Lock()
	delete(rg.regs, name)
	rg.metrics.registrations.Set(float64(len(rg.regs)))
	rg.mu.Unlock()
	rg.log.Info("provider deregistered", "provider", registry.Key(rg.namespace, name))
	return nil
}

// close stops every renewal and deletes every registration, within ctx.
func (rg *registrar) close(ctx context.Context) {
	rg.writeMu.Lock()
	defer rg.writeMu.Unlock()
	rg.mu.Lock()
	rg.closed = true
	regs := rg.regs
	rg.regs = map[string]*registration{}
	rg.metrics.registrations.Set(0)
	rg.mu.Unlock()
	for name, reg := range regs {
		rg.stopRenewer(reg)
		if err := rg.client.DeleteProvider(ctx, rg.namespace, name, 0); err != nil && client.StatusCode(err) != http.StatusNotFound {
			rg.log.Warn("deregistration failed; the lease will expire", "provider", registry.Key(rg.namespace, name), "err", err)
			continue
		}
		rg.log.Info("provider deregistered at shutdown", "provider", registry.Key(rg.namespace, name))
	}
}

func (rg *registrar) startRenewer(name string, reg *registration) {
	ctx, cancel := context.WithCancel(context.Background())
	reg.stop, reg.done = cancel, make(chan struct{})
	go func() {
		defer close(reg.done)
		rg.renew(ctx, name, reg)
	}()
}

func (rg *registrar) stopRenewer(reg *registration) {
	if reg.stop != nil {
		reg.stop()
		<-reg.done
		reg.stop = nil
	}
}

// renew extends the lease every ttl/3. A failed renewal is retried sooner
// (after 250 ms, doubling up to ttl/3), so that a control plane that was
// away for most of a lease still gets a renewal before it ends. When the
// control plane says the provider is gone (its lease lapsed while the
// control plane was away), it registers it again.
func (rg *registrar) renew(ctx context.Context, name string, reg *registration) {
	interval := reg.ttl / 3
	next := interval
	retry := min(250*time.Millisecond, interval)
	t := time.NewTimer(next)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, interval)
		_, err := rg.client.RenewProvider(cctx, rg.namespace, name, reg.ttl)
		if client.StatusCode(err) == http.StatusNotFound {
			rg.log.Warn("lease lapsed; registering again", "provider", registry.Key(rg.namespace, name))
			_, _, err = rg.client.PutProvider(cctx, reg.provider)
		}
		cancel()
		next = interval
		if err != nil && ctx.Err() == nil {
			rg.metrics.renewFailures.Inc()
			rg.log.Warn("lease renewal failed", "provider", registry.Key(rg.namespace, name), "err", err, "retry_in", retry)
			next, retry = retry, min(2*retry, interval)
		} else {
			retry = min(250*time.Millisecond, interval)
		}
		t.Reset(next)
	}
}

// upstreamProblem maps a control-plane failure to the sidecar's answer: a
// 4xx problem passes through (it is about the request), a 5xx becomes 502,
// a transport failure 503.
func upstreamProblem(err error) *httpapi.Problem {
	var p *httpapi.Problem
	if errors.As(err, &p) {
		if p.Status >= 400 && p.Status < 500 {
			out := *p
			out.Detail = "control plane refused the request: " + p.Error()
			return &out
		}
		return httpapi.NewProblem(http.StatusBadGateway, "control-plane-error", "the control plane failed: "+p.Error())
	}
	return httpapi.NewProblem(http.StatusServiceUnavailable, "control-plane-unreachable", "the control plane is unreachable: "+err.Error())
}
