package ddi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// InvokeTransport returns an http.RoundTripper that sends every request for
// "http://ALIAS/PATH?QUERY" through the sidecar's invoke proxy
// (/v1/invoke/ALIAS/PATH?QUERY), which picks a ready endpoint of the http
// provider bound to ALIAS, balances load, retries idempotent requests and
// passes trace headers through. Use it as the Transport of an http.Client,
// or take InvokeClient.
func (c *Client) InvokeTransport() http.RoundTripper {
	return &invokeTransport{c: c}
}

// InvokeClient returns an *http.Client that routes "http://ALIAS/..." through
// the sidecar (see InvokeTransport).
func (c *Client) InvokeClient() *http.Client {
	return &http.Client{Transport: c.InvokeTransport()}
}

// invokeTransport rewrites requests to the sidecar's invoke route. With
// alias set it sends every request to that alias whatever its host.
type invokeTransport struct {
	c     *Client
	alias string
}

func (t *invokeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.c.init(); err != nil {
		closeBody(req)
		return nil, err
	}
	alias := t.alias
	if alias == "" {
		alias = req.URL.Hostname()
	}
	if alias == "" {
		closeBody(req)
		return nil, errors.New("ddi: invoke: the request URL names no dependency; use http://ALIAS/path")
	}
	base, err := url.Parse(t.c.base)
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("ddi: invoke: %w", err)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme = base.Scheme
	u.Host = base.Host
	u.User = nil
	u.Path = base.Path + "/v1/invoke/" + alias + "/" + strings.TrimPrefix(req.URL.Path, "/")
	if req.URL.RawPath != "" {
		u.RawPath = base.Path + "/v1/invoke/" + url.PathEscape(alias) + "/" + strings.TrimPrefix(req.URL.RawPath, "/")
	}
	out.URL = &u
	out.Host = ""
	return t.c.transport().RoundTrip(out)
}

// transport returns the round tripper used for requests to the sidecar.
func (c *Client) transport() http.RoundTripper {
	if c.hc.Transport != nil {
		return c.hc.Transport
	}
	return http.DefaultTransport
}

// directTransport sends requests straight to a ready endpoint of the
// provider bound to alias, read from the Client's cache at every request,
// round robin over the ready endpoints.
type directTransport struct {
	dep  *Dependency
	next atomic.Uint64
	rt   http.RoundTripper
}

func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	b, err := t.dep.Binding(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	eps := b.ReadyEndpoints()
	if len(eps) == 0 {
		closeBody(req)
		return nil, fmt.Errorf("ddi: dependency %q (provider %q): %w", b.Name, b.Provider, ErrNoEndpoint)
	}
	target, err := url.Parse(eps[int(t.next.Add(1)-1)%len(eps)])
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("ddi: dependency %q (provider %q): endpoint is not a URL: %w", b.Name, b.Provider, err)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme = target.Scheme
	u.Host = target.Host
	u.Path = strings.TrimSuffix(target.Path, "/") + "/" + strings.TrimPrefix(req.URL.Path, "/")
	u.RawPath = ""
	out.URL = &u
	out.Host = ""
	return t.rt.RoundTrip(out)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
