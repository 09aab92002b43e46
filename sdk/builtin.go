package ddi

import (
	"context"
	"net/http"
	"net/url"
)

// The base package's own factories: HTTP clients, addresses, the binding
// itself and the live Dependency handle.
func init() {
	RegisterFactory([]string{"http"}, newHTTPClient)
	RegisterFactory(nil, newAddress)
	RegisterFactory(nil, newURL)
	RegisterFactory(nil, func(ctx context.Context, d *Dependency) (Binding, error) {
		if d.Lazy() {
			b, _ := d.Binding(ctx)
			return b, nil
		}
		return d.Binding(ctx)
	})
	RegisterFactory(nil, func(_ context.Context, d *Dependency) (*Dependency, error) { return d, nil })
}

// directHTTPTransport carries the requests of "direct" HTTP clients.
var directHTTPTransport = http.DefaultTransport.(*http.Transport).Clone()

// newHTTPClient builds an *http.Client bound to the dependency: by default
// every request goes through the sidecar's invoke proxy to the bound
// provider, whatever the request's host; with the tag option "direct" it
// goes straight to a ready endpoint of the current binding.
func newHTTPClient(ctx context.Context, d *Dependency) (*http.Client, error) {
	if !d.Lazy() {
		b, err := d.Binding(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := b.URL(); err != nil {
			return nil, err
		}
	}
	if d.Option("direct") {
		return &http.Client{Transport: &directTransport{dep: d, rt: directHTTPTransport}}, nil
	}
	return &http.Client{Transport: &invokeTransport{c: d.c, alias: d.Alias}}, nil
}

// newAddress fills a string with the binding's first ready endpoint URL, or
// "host:port" with the tag option "addr". It is a copy taken at injection:
// it does not follow later changes (use Resolve, *http.Client or a
// *Dependency field for that).
func newAddress(ctx context.Context, d *Dependency) (string, error) {
	b, err := d.Binding(ctx)
	if err != nil {
		if d.Lazy() {
			return "", nil
		}
		return "", err
	}
	if d.Option("addr") {
		return b.Addr(), nil
	}
	u, err := b.URL()
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// newURL fills a *url.URL like newAddress.
func newURL(ctx context.Context, d *Dependency) (*url.URL, error) {
	b, err := d.Binding(ctx)
	if err != nil {
		if d.Lazy() {
			return nil, nil
		}
		return nil, err
	}
	return b.URL()
}
