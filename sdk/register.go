package ddi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// ProviderSpec describes a provider that the function registers at run
// time (see Client.Register).
type ProviderSpec struct {
	// Type is the kind of dependency the provider satisfies: http,
	// postgresql, redis, nats...
	Type string
	// Version is a semantic version; empty means 0.0.0.
	Version string
	// Endpoints are the URLs where the provider answers; all are ready.
	Endpoints []string
	Labels    map[string]string
	Config    map[string]string
	// TTL is the lease the sidecar renews (every TTL/3) while it runs;
	// zero means the sidecar's default (30 s).
	TTL time.Duration
}

type providerBody struct {
	Type      string            `json:"type"`
	Version   string            `json:"version,omitempty"`
	Endpoints []endpointBody    `json:"endpoints,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Config    map[string]string `json:"config,omitempty"`
	TTL       string            `json:"ttl,omitempty"`
}

type endpointBody struct {
	URL string `json:"url"`
}

// Provider is a provider as the sidecar stored it (secrets never echoed).
type Provider struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Type      string            `json:"type"`
	Version   string            `json:"version,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Endpoints []Endpoint        `json:"endpoints,omitempty"`
	Config    map[string]string `json:"config,omitempty"`
	Revision  int64             `json:"revision,omitempty"`
}

// Registration is a provider the function registered through its sidecar.
// It lives until the context given to Register ends or Deregister is
// called, whichever comes first.
type Registration struct {
	// Provider is the provider as the sidecar stored it.
	Provider Provider

	c    *Client
	name string
	once sync.Once
	err  error
	done chan struct{}
}

// deregisterTimeout bounds the DELETE sent when a registration's context
// has ended.
const deregisterTimeout = 5 * time.Second

// Register registers (or replaces) the provider name through the sidecar,
// which renews its lease for as long as it runs. When ctx ends the
// registration is deleted; Registration.Done is closed once that is done.
// If the function dies, the sidecar's own shutdown or the lease's expiry
// removes it.
func (c *Client) Register(ctx context.Context, name string, spec ProviderSpec) (*Registration, error) {
	body := providerBody{
		Type:    spec.Type,
		Version: spec.Version,
		Labels:  spec.Labels,
		Config:  spec.Config,
	}
	for _, u := range spec.Endpoints {
		body.Endpoints = append(body.Endpoints, endpointBody{URL: u})
	}
	if spec.TTL != 0 {
		body.TTL = spec.TTL.String()
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("ddi: register %q: %w", name, err)
	}
	r := &Registration{c: c, name: name, done: make(chan struct{})}
	if err := c.do(ctx, http.MethodPut, "/v1/providers/"+url.PathEscape(name), bytes.NewReader(buf), &r.Provider); err != nil {
		return nil, fmt.Errorf("ddi: register provider %q: %w", name, err)
	}
	context.AfterFunc(ctx, func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
		defer cancel()
		_ = r.Deregister(dctx)
	})
	return r, nil
}

// Deregister deletes the registration now. Later calls return the first
// call's result.
func (r *Registration) Deregister(ctx context.Context) error {
	r.once.Do(func() {
		defer close(r.done)
		err := r.c.do(ctx, http.MethodDelete, "/v1/providers/"+url.PathEscape(r.name), nil, nil)
		if err != nil {
			r.err = fmt.Errorf("ddi: deregister provider %q: %w", r.name, err)
		}
	})
	return r.err
}

// Done is closed once the registration has been deleted.
func (r *Registration) Done() <-chan struct{} { return r.done }

// Err returns the error of the deletion, once Done is closed.
func (r *Registration) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}
