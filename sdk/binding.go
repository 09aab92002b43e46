package ddi

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"ddi.dev/ddi/sdk/wellknown"
)

// Endpoint is one address of a provider.
type Endpoint struct {
	URL   string `json:"url"`
	Ready bool   `json:"ready"`
}

// Binding is the resolved answer for one of the function's dependencies:
// which provider satisfies it, where it answers, its configuration and (for
// consumers in the provider's scope) its credentials. Revision grows every
// time the binding changes.
//
// Bindings returned by a Client share their maps and slices with the
// Client's cache: treat them as read-only.
type Binding struct {
	Name      string            `json:"name"`
	Provider  string            `json:"provider"`
	Namespace string            `json:"namespace"`
	Type      string            `json:"type"`
	Version   string            `json:"version,omitempty"`
	Endpoints []Endpoint        `json:"endpoints"`
	Config    map[string]string `json:"config,omitempty"`
	Secret    map[string]string `json:"secret,omitempty"`
	Selector  string            `json:"selector"`
	Revision  int64             `json:"revision"`
}

// Unresolved explains why a dependency has no binding.
type Unresolved struct {
	Name     string `json:"name"`
	Selector string `json:"selector"`
	Reason   string `json:"reason"`
}

// Snapshot is everything the sidecar knows about the function's
// dependencies: its bindings sorted by name, the dependencies that have no
// provider, and the snapshot version.
type Snapshot struct {
	Bindings   []Binding    `json:"bindings"`
	Unresolved []Unresolved `json:"unresolved"`
	Version    int64        `json:"version"`
}

// ErrNoEndpoint is returned by Binding.URL when a binding has no ready
// endpoint.
var ErrNoEndpoint = errors.New("no ready endpoint")

// Endpoint returns the URL of the binding's first ready endpoint, or "".
func (b Binding) Endpoint() string {
	for _, e := range b.Endpoints {
		if e.Ready {
			return e.URL
		}
	}
	return ""
}

// ReadyEndpoints returns the URLs of the binding's ready endpoints.
func (b Binding) ReadyEndpoints() []string {
	var out []string
	for _, e := range b.Endpoints {
		if e.Ready {
			out = append(out, e.URL)
		}
	}
	return out
}

// URL parses the binding's first ready endpoint.
func (b Binding) URL() (*url.URL, error) {
	raw := b.Endpoint()
	if raw == "" {
		return nil, fmt.Errorf("dependency %q (provider %q): %w", b.Name, b.Provider, ErrNoEndpoint)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("dependency %q (provider %q): endpoint is not a URL: %w", b.Name, b.Provider, err)
	}
	return u, nil
}

// Host returns the host name of the binding's first ready endpoint, or the
// "host" config key when the endpoint has none.
func (b Binding) Host() string {
	if u, err := b.URL(); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return b.Value("host")
}

// Port returns the port of the binding's first ready endpoint; without one
// in the URL it falls back to the "port" config key, then to the
// conventional port of the binding's type or URL scheme (5432 for
// postgresql, 6379 for redis, 4222 for nats, 80 for http, 443 for https).
func (b Binding) Port() string {
	u, err := b.URL()
	if err == nil && u.Port() != "" {
		return u.Port()
	}
	if p := b.Value("port"); p != "" {
		return p
	}
	scheme := ""
	if u != nil {
		scheme = u.Scheme
	}
	if p := DefaultPort(scheme); p != "" {
		return p
	}
	return DefaultPort(b.Type)
}

// Addr returns "host:port" for the binding's first ready endpoint.
func (b Binding) Addr() string {
	h := b.Host()
	if h == "" {
		return ""
	}
	return net.JoinHostPort(h, b.Port())
}

// Value returns a key of the binding: the secret's value if the secret has
// the key, else the config's.
func (b Binding) Value(key string) string {
	if v, ok := b.Secret[key]; ok {
		return v
	}
	return b.Config[key]
}

// DefaultPort returns the conventional port for a binding type or URL
// scheme, or "" (the table the sidecar uses too: see package wellknown).
func DefaultPort(typeOrScheme string) string {
	return wellknown.DefaultPort(typeOrScheme)
}

// CanonicalType maps the usual aliases of a binding type to the name the
// Service Binding convention uses ("postgres" and "pg" to "postgresql",
// "mongo" to "mongodb", "rabbitmq" to "amqp"), and lower-cases it, as the
// sidecar and the control plane do (see package wellknown).
func CanonicalType(t string) string {
	return wellknown.CanonicalType(t)
}
