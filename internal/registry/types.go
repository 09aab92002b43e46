package registry

import (
	"maps"
	"slices"
	"time"
)

// DefaultNamespace is the namespace of providers and consumers that do not
// name one, and the only namespace in local mode.
const DefaultNamespace = "default"

// Provider is one implementation of a dependency: a database, a cache, a
// queue, another function.
type Provider struct {
	// Namespace and Name identify the provider. Both are DNS-1123 labels.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Type is the kind of dependency: http, grpc, postgresql, redis, nats,
	// kafka, s3, generic... (see CanonicalType for aliases).
	Type string `json:"type"`
	// Version is a semantic version; empty means 0.0.0.
	Version string            `json:"version,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Endpoints are where the provider answers, as URLs.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Config is non-secret configuration handed to every bound consumer.
	Config map[string]string `json:"config,omitempty"`
	// Secret is credential material (username, password, ...). It reaches
	// only consumers in Scope, and never appears in listings or logs.
	Secret map[string]string `json:"secret,omitempty"`
	// SecretRef names where the secret lives when the store holds only a
	// reference (a Kubernetes Secret); the control plane fills Secret.
	SecretRef *SecretRef `json:"secretRef,omitempty"`
	// Scope says which consumers may bind to the provider.
	Scope Scope `json:"scope,omitempty"`
	// Lease is set on providers registered at run time; the store deletes
	// the provider when the lease expires.
	Lease *Lease `json:"lease,omitempty"`
	// Owner identifies who registered the provider at run time (a sidecar
	// or pod); informational in local mode.
	Owner string `json:"owner,omitempty"`

	// Revision is the store revision of the provider's last change. Update
	// and Delete use it for optimistic concurrency.
	Revision int64 `json:"revision,omitempty"`
}

// Endpoint is one address of a provider.
type Endpoint struct {
	URL   string `json:"url"`
	Ready bool   `json:"ready"`
}

// SecretRef points at secret material kept outside the registry.
type SecretRef struct {
	Name string   `json:"name"`
	Keys []string `json:"keys,omitempty"`
}

// Scope limits which consumers may bind to a provider. Empty fields admit
// everyone in the provider's own namespace. Namespaces may hold "*" for all.
type Scope struct {
	Namespaces      []string          `json:"namespaces,omitempty"`
	ServiceAccounts []string          `json:"serviceAccounts,omitempty"`
	Workloads       []string          `json:"workloads,omitempty"`
	WorkloadLabels  map[string]string `json:"workloadLabels,omitempty"`
}

// Lease is a time-limited registration.
type Lease struct {
	TTL       Duration  `json:"ttl"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Key returns "namespace/name", the provider's identity in stores.
func (p *Provider) Key() string { return Key(p.Namespace, p.Name) }

// Key joins a namespace and a name.
func Key(namespace, name string) string {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return namespace + "/" + name
}

// Clone returns a deep copy of p: no map, slice or pointer is shared with
// p, so either can be changed without the other seeing it.
func (p *Provider) Clone() Provider {
	c := *p
	c.Labels = maps.Clone(p.Labels)
	c.Endpoints = slices.Clone(p.Endpoints)
	c.Config = maps.Clone(p.Config)
	c.Secret = maps.Clone(p.Secret)
	if p.SecretRef != nil {
		ref := *p.SecretRef
		ref.Keys = slices.Clone(ref.Keys)
		c.SecretRef = &ref
	}
	c.Scope.Namespaces = slices.Clone(p.Scope.Namespaces)
	c.Scope.ServiceAccounts = slices.Clone(p.Scope.ServiceAccounts)
	c.Scope.Workloads = slices.Clone(p.Scope.Workloads)
	c.Scope.WorkloadLabels = maps.Clone(p.Scope.WorkloadLabels)
	if p.Lease != nil {
		l := *p.Lease
		c.Lease = &l
	}
	return c
}

// ReadyEndpoints returns the provider's ready endpoints.
func (p *Provider) ReadyEndpoints() []Endpoint {
	var out []Endpoint
	for _, e := range p.Endpoints {
		if e.Ready {
			out = append(out, e)
		}
	}
	return out
}

// Consumer identifies a function that has dependencies: a workload in a
// namespace, running as a service account, with labels.
type Consumer struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
}

// Dependency is a named slot a function declares, such as "db".
type Dependency struct {
	Alias string `json:"alias"`
	// Selector chooses the provider; for a split, it is the primary
	// target's selector (the highest weight, the first among equals).
	Selector Selector `json:"selector"`
	// Split lists every target of a weighted traffic split, in the order
	// declared; nil for a dependency with one selector. NewSplit builds
	// and checks it.
	Split []Target `json:"split,omitempty"`
}

// Binding is the resolved answer for one dependency of one consumer.
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
	// Revision grows every time the binding's content changes.
	Revision int64 `json:"revision"`
	// Split is set when the dependency is a weighted traffic split: every
	// target in declared order with its weight, its share of invocations
	// and its provider (or why it has none). The fields above are the
	// primary target's. Sidecars that predate splits ignore it and send
	// every invocation to the primary.
	Split []SplitTarget `json:"split,omitempty"`
}

// Unresolved explains why a dependency has no binding.
type Unresolved struct {
	Name     string `json:"name"`
	Selector string `json:"selector"`
	Reason   string `json:"reason"`
}
