package registry

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors every Store returns (wrapped or not); the API maps them
// to HTTP statuses at its edge.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrConflict  = errors.New("revision conflict")
	ErrCompacted = errors.New("revision compacted")
	ErrClosed    = errors.New("store closed")
)

// EventType says what happened to a provider.
type EventType string

// Event types.
const (
	Put    EventType = "PUT"
	Delete EventType = "DELETE"
)

// Event is one change in a Store. Revision is the store revision at which
// it happened; events arrive in increasing Revision order.
type Event struct {
	Type     EventType
	Provider Provider // for Delete: the last state, with Revision set to the delete's revision
	Revision int64
}

// Store is a registry backend. A store expires run-time registrations
// itself: when a provider's lease passes without Renew, the store deletes it
// and emits a Delete event. Every implementation passes the conformance
// suite in registrytest.
//
// Revisions are store-wide, start at 1 and only grow; each write takes a
// new revision and sets Provider.Revision to it.
type Store interface {
	// Get returns one provider or ErrNotFound.
	Get(ctx context.Context, namespace, name string) (Provider, error)
	// List returns every provider, sorted by namespace/name, and the store
	// revision the list reflects (a Watch from it misses nothing).
	List(ctx context.Context) ([]Provider, int64, error)
	// Create stores a new provider; ErrExists if the key is taken. A
	// provider with a Lease gets Lease.ExpiresAt = now + TTL.
	Create(ctx context.Context, p Provider) (Provider, error)
	// Update replaces a provider. When p.Revision is non-zero it must equal
	// the stored revision, or Update returns ErrConflict. A lease is
	// renewed from now.
	Update(ctx context.Context, p Provider) (Provider, error)
	// Delete removes a provider. When revision is non-zero it must equal the
	// stored revision, or Delete returns ErrConflict.
	Delete(ctx context.Context, namespace, name string, revision int64) error
	// Renew extends the lease of a run-time registration to now + ttl.
	Renew(ctx context.Context, namespace, name string, ttl time.Duration) (Provider, error)
	// Watch streams every event with a revision greater than fromRevision,
	// without gaps or duplicates, until ctx ends or the store closes (then
	// the channel closes). ErrCompacted if fromRevision is too old: List
	// again and watch from the list's revision. A receiver that falls far
	// behind has its channel closed early; it watches again from the last
	// revision it saw.
	Watch(ctx context.Context, fromRevision int64) (<-chan Event, error)
	// Close releases the store.
	Close() error
}
