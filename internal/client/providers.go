package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// Provider is a provider as the control plane shows it: Secret is always
// empty and SecretKeys lists the names of the secret entries.
type Provider = protocol.ProviderView

// ProviderList is the answer of ListProviders.
type ProviderList struct {
	Providers []Provider `json:"providers"`
	// Revision is the store revision the list reflects.
	Revision int64 `json:"revision"`
}

// SidecarStatus describes one sidecar connected to the control plane.
type SidecarStatus = protocol.SidecarStatus

func providerPath(namespace, name string) string {
	if namespace == "" {
		namespace = registry.DefaultNamespace
	}
	return "/v1/providers/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// ListProviders lists providers, in one namespace when namespace is not
// empty, else in all of them.
func (c *Client) ListProviders(ctx context.Context, namespace string) (ProviderList, error) {
	path := "/v1/providers"
	if namespace != "" {
		path += "?namespace=" + url.QueryEscape(namespace)
	}
	var out ProviderList
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// GetProvider returns one provider; a missing one is a 404 problem.
func (c *Client) GetProvider(ctx context.Context, namespace, name string) (Provider, error) {
	var out Provider
	_, err := c.do(ctx, http.MethodGet, providerPath(namespace, name), nil, &out)
	return out, err
}

// PutProvider creates or replaces p (at p.Namespace/p.Name). With
// p.Revision 0 it creates or replaces unconditionally; otherwise the stored
// revision must match (else a 409 problem). created reports a 201 answer.
func (c *Client) PutProvider(ctx context.Context, p registry.Provider) (stored Provider, created bool, err error) {
	status, err := c.do(ctx, http.MethodPut, providerPath(p.Namespace, p.Name), p, &stored)
	return stored, status == http.StatusCreated, err
}

// DeleteProvider deletes a provider; a non-zero revision must match the
// stored one.
func (c *Client) DeleteProvider(ctx context.Context, namespace, name string, revision int64) error {
	path := providerPath(namespace, name)
	if revision != 0 {
		path += "?revision=" + strconv.FormatInt(revision, 10)
	}
	_, err := c.do(ctx, http.MethodDelete, path, nil, nil)
	return err
}

// RenewProvider extends the lease of a run-time registration to now + ttl.
func (c *Client) RenewProvider(ctx context.Context, namespace, name string, ttl time.Duration) (Provider, error) {
	var out Provider
	body := struct {
		TTL registry.Duration `json:"ttl"`
	}{registry.Duration(ttl)}
	_, err := c.do(ctx, http.MethodPost, providerPath(namespace, name)+"/renew", body, &out)
	return out, err
}

// Resolve asks which provider the control plane would bind to dependency
// ("alias=selector") for consumer. The answer never carries secrets. An
// unresolved dependency is a 404 problem naming dependency and selector.
func (c *Client) Resolve(ctx context.Context, consumer registry.Consumer, dependency string) (registry.Binding, error) {
	body := struct {
		Consumer   registry.Consumer `json:"consumer"`
		Dependency string            `json:"dependency"`
	}{consumer, dependency}
	var out registry.Binding
	_, err := c.do(ctx, http.MethodPost, "/v1/resolve", body, &out)
	return out, err
}

// Sidecars lists the sidecars connected to the control plane.
func (c *Client) Sidecars(ctx context.Context) ([]SidecarStatus, error) {
	l, err := c.SidecarList(ctx)
	return l.Sidecars, err
}

// SidecarList is the answer of GET /v1/sidecars.
type SidecarList = protocol.SidecarList

// SidecarList lists the sidecars connected to the control plane and, when
// it runs as several replicas, what each replica contributed or why it
// could not be asked.
func (c *Client) SidecarList(ctx context.Context) (SidecarList, error) {
	var out SidecarList
	_, err := c.do(ctx, http.MethodGet, "/v1/sidecars", nil, &out)
	return out, err
}
