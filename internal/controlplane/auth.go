package controlplane

import (
	"context"
	"fmt"
	"net/http"

	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// Identity is who a stream serves, as established by an Authenticator.
type Identity struct {
	Consumer     registry.Consumer
	Dependencies []registry.Dependency
	// Owner is recorded on providers this sidecar registers (a pod UID on
	// Kubernetes, the sidecar ID locally).
	Owner string
}

// Caller is who sends a request to the control plane API: an admin, a
// sidecar (Consumer and Owner) or a user (User and Allowed), never more
// than one.
type Caller struct {
	// Admin callers may read every provider and sidecar and resolve for
	// any consumer: the person at the machine of `ddi dev`.
	Admin bool
	// Consumer and Owner identify a sidecar's function and pod. A
	// sidecar reads its own namespace's providers, resolves only for its
	// own consumer, and sees and acknowledges only its own pod's streams.
	Consumer registry.Consumer
	Owner    string
	// User names a person (or a service account acting as one) that the
	// Authenticator verified by their own Kubernetes credentials. A user
	// reads what Allowed grants, asked route by route (docs/security.md):
	// never a sidecar's stream, never a write.
	User string
	// Allowed reports whether the user may do a, by their Kubernetes RBAC
	// (a SubjectAccessReview). Set with User.
	Allowed func(ctx context.Context, a Access) (bool, error)
}

// Access is one Kubernetes permission a user needs for a route: Verb on
// Resource of API group Group, in Namespace ("" for every namespace),
// optionally on the object Name.
type Access struct {
	Verb, Group, Resource, Namespace, Name string
}

// String says the access in words, for refusals: "list providers.ddi.dev
// in namespace shop".
func (a Access) String() string {
	res := a.Resource
	if a.Group != "" {
		res += "." + a.Group
	}
	if a.Name != "" {
		res += " " + a.Name
	}
	if a.Namespace == "" {
		return a.Verb + " " + res + " in every namespace"
	}
	return a.Verb + " " + res + " in namespace " + a.Namespace
}

// The accesses the routes ask of users.
func listProviders(ns string) Access {
	return Access{Verb: "list", Group: "ddi.dev", Resource: "providers", Namespace: ns}
}

func getProvider(ns, name string) Access {
	return Access{Verb: "get", Group: "ddi.dev", Resource: "providers", Namespace: ns, Name: name}
}

// graphAccess is what the whole graph shows: every namespace's providers,
// dependency sets and functions (pods).
var graphAccess = []Access{
	listProviders(""),
	{Verb: "list", Group: "ddi.dev", Resource: "dependencysets"},
	{Verb: "list", Resource: "pods"},
}

// sidecarsAccess is what GET /v1/sidecars shows a user: every pod's
// streams.
var sidecarsAccess = []Access{{Verb: "list", Resource: "pods"}}

// Authenticator establishes the identity behind a request.
type Authenticator interface {
	// Identify returns the identity a stream serves. Locally it trusts the
	// hello; on Kubernetes it verifies the bearer token and reads the pod.
	Identify(ctx context.Context, r *http.Request, hello *protocol.Hello) (Identity, error)
	// Caller returns who sends r, for every route other than the stream.
	Caller(ctx context.Context, r *http.Request) (Caller, error)
	// Recheck verifies, while a stream is open, that the identity it was
	// opened for still holds (r is the stream's request). An error ends
	// the stream: on Kubernetes when its pod is gone or its token expired.
	Recheck(ctx context.Context, r *http.Request, id Identity) error
	// AuthorizeWrite checks a provider create, update, renew or delete
	// (p holds at least namespace and name). It may set p.Owner, or refuse
	// with an error wrapping ErrForbidden or ErrUnauthenticated.
	AuthorizeWrite(ctx context.Context, r *http.Request, p *registry.Provider) error
}

// Errors an Authenticator returns; the API maps them to 403 and 401.
var (
	ErrForbidden       = fmt.Errorf("forbidden")
	ErrUnauthenticated = fmt.Errorf("unauthenticated")
	// ErrThrottled refuses a caller that sent too many unverified
	// credentials; the API maps it to 429.
	ErrThrottled = fmt.Errorf("too many unverified tokens from this address")
)

// SecretSource fills secret material that a provider only references.
type SecretSource interface {
	// Secret returns the data of p.SecretRef, restricted to its keys.
	Secret(ctx context.Context, p *registry.Provider) (map[string]string, error)
}

// Trusting is the Authenticator of `ddi dev`: the control plane listens on
// loopback, so it believes the identity and dependencies a sidecar declares
// in its hello.
type Trusting struct{}

// Identify parses the hello's consumer and dependencies.
func (Trusting) Identify(_ context.Context, _ *http.Request, hello *protocol.Hello) (Identity, error) {
	c := hello.Consumer
	if c.Namespace == "" {
		c.Namespace = registry.DefaultNamespace
	}
	if err := registry.ValidateName("consumer.name", c.Name); err != nil {
		return Identity{}, err
	}
	if err := registry.ValidateName("consumer.namespace", c.Namespace); err != nil {
		return Identity{}, err
	}
	deps, err := registry.ParseDependencyList(hello.Dependencies)
	if err != nil {
		return Identity{}, &registry.FieldError{Field: "dependencies", Reason: "has an entry that does not parse: " + err.Error()}
	}
	return Identity{Consumer: c, Dependencies: deps, Owner: hello.SidecarID}, nil
}

// AuthorizeWrite allows every write.
func (Trusting) AuthorizeWrite(context.Context, *http.Request, *registry.Provider) error { return nil }

// Caller is an admin: whoever reaches the loopback listener.
func (Trusting) Caller(context.Context, *http.Request) (Caller, error) {
	return Caller{Admin: true}, nil
}

// Recheck has nothing to check.
func (Trusting) Recheck(context.Context, *http.Request, Identity) error { return nil }
