package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/watchhub"
)

// Defaults for the zero fields of Options.
const (
	DefaultLockTimeout   = time.Second
	DefaultSweepInterval = time.Second
	DefaultMaxEvents     = 10000
	DefaultWatchBuffer   = 1024
)

// ErrLocked is returned by Open when another process holds the store file.
var ErrLocked = errors.New("store is locked by another ddi process")

// formatVersion is the layout of the buckets below; Open refuses files
// written in another layout.
const formatVersion = "1"

var (
	bucketMeta      = []byte("meta")
	bucketProviders = []byte("providers")
	bucketEvents    = []byte("events")

	keyRevision  = []byte("revision")
	keyCompacted = []byte("compacted")
	keyFormat    = []byte("format")
)

// Options configure a Store. The zero value gives the defaults.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file before it fails with ErrLocked.
	LockTimeout time.Duration
	// SweepInterval is how often the store looks for expired leases.
	SweepInterval time.Duration
	// MaxEvents is how many of the most recent events the log keeps for
	// Watch; a Watch from an older revision fails with
	// registry.ErrCompacted.
	MaxEvents int
	// WatchBuffer is how many live events a watcher may have unread before
	// the store closes its channel.
	WatchBuffer int
	// Logger receives lease expiries and background failures; nil discards
	// them.
	Logger *slog.Logger
	// Now is the clock used for leases; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = DefaultWatchBuffer
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Store is a registry.Store in a bbolt file. Its methods are safe for
// concurrent use.
type Store struct {
	db   *bbolt.DB
	path string
	opts Options
	log  *slog.Logger

	closed atomic.Bool // set under mu; read without it by Get and List

	// mu serialises writes with the registration of watchers and the
	// delivery of events, so that a Watch sees each committed event either
	// in its replay or live, never both and never neither.
	mu     sync.Mutex
	hub    *watchhub.Hub
	leases map[string]time.Time // key -> Lease.ExpiresAt of leased providers

	stop chan struct{} // closed by Close to end the sweeper
	done chan struct{} // closed by the sweeper when it returns
}

var _ registry.Store = (*Store)(nil)

// Open opens the store file at path, creating it and its directory if
// needed, and starts the lease sweeper. Close the store to stop it and
// release the file.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (waited %s; stop the other process or choose another store path)", path, ErrLocked, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{
		db:     db,
		path:   path,
		opts:   opts,
		log:    opts.Logger,
		hub:    watchhub.New(opts.WatchBuffer, opts.Logger),
		leases: map[string]time.Time{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	go s.sweep()
	return s, nil
}

// init creates the buckets of a new file, checks the format of an old one
// and loads the lease index.
func (s *Store) init() error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch f := meta.Get(keyFormat); {
		case f == nil:
			if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
				return err
			}
		case string(f) != formatVersion:
			return fmt.Errorf("file format %q is not the supported %q", f, formatVersion)
		}
		if _, err := tx.CreateBucketIfNotExists(bucketEvents); err != nil {
			return err
		}
		providers, err := tx.CreateBucketIfNotExists(bucketProviders)
		if err != nil {
			return err
		}
		return providers.ForEach(func(k, v []byte) error {
			var p registry.Provider
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("decode provider %s: %w", k, err)
			}
			if p.Lease != nil {
				s.leases[string(k)] = p.Lease.ExpiresAt
			}
			return nil
		})
	})
}

// Path returns the file the store lives in, also after Close.
func (s *Store) Path() string { return s.path }

// Close stops the sweeper, closes every watch channel and releases the
// file. Later calls do nothing; other methods then return
// registry.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	s.hub.CloseAll()
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Get returns one provider or registry.ErrNotFound.
func (s *Store) Get(ctx context.Context, namespace, name string) (registry.Provider, error) {
	key := registry.Key(namespace, name)
	var p registry.Provider
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketProviders).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("get provider %s: %w", key, registry.ErrNotFound)
		}
		return decodeProvider(key, v, &p)
	})
	if err != nil {
		return registry.Provider{}, err
	}
	return p, nil
}

// List returns every provider sorted by namespace/name and the store
// revision it reflects.
func (s *Store) List(ctx context.Context) ([]registry.Provider, int64, error) {
	var (
		list []registry.Provider
		rev  int64
	)
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		rev = getInt(tx.Bucket(bucketMeta), keyRevision)
		return tx.Bucket(bucketProviders).ForEach(func(k, v []byte) error {
			var p registry.Provider
			if err := decodeProvider(string(k), v, &p); err != nil {
				return err
			}
			list = append(list, p)
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return list, rev, nil
}

// Create stores a new provider, or returns registry.ErrExists. A provider
// with a Lease gets Lease.ExpiresAt = now + TTL.
func (s *Store) Create(ctx context.Context, p registry.Provider) (registry.Provider, error) {
	key := p.Key()
	var out registry.Provider
	err := s.update(ctx, func(t *txn) error {
		_, ok, err := t.get(key)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("create provider %s: %w", key, registry.ErrExists)
		}
		p.Lease = renewed(p.Lease, s.opts.Now())
		out, err = t.put(key, p)
		return err
	})
	if err != nil {
		return registry.Provider{}, err
	}
	return out, nil
}

// Update replaces a provider. A non-zero p.Revision must equal the stored
// revision, or Update returns registry.ErrConflict. A lease is renewed from
// now.
func (s *Store) Update(ctx context.Context, p registry.Provider) (registry.Provider, error) {
	key := p.Key()
	var out registry.Provider
	err := s.update(ctx, func(t *txn) error {
		old, ok, err := t.get(key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("update provider %s: %w", key, registry.ErrNotFound)
		}
		if p.Revision != 0 && p.Revision != old.Revision {
			return fmt.Errorf("update provider %s at revision %d: it is at revision %d: %w", key, p.Revision, old.Revision, registry.ErrConflict)
		}
		p.Lease = renewed(p.Lease, s.opts.Now())
		out, err = t.put(key, p)
		return err
	})
	if err != nil {
		return registry.Provider{}, err
	}
	return out, nil
}

// Delete removes a provider. A non-zero revision must equal the stored
// revision, or Delete returns registry.ErrConflict.
func (s *Store) Delete(ctx context.Context, namespace, name string, revision int64) error {
	key := registry.Key(namespace, name)
	return s.update(ctx, func(t *txn) error {
		old, ok, err := t.get(key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("delete provider %s: %w", key, registry.ErrNotFound)
		}
		if revision != 0 && revision != old.Revision {
			return fmt.Errorf("delete provider %s at revision %d: it is at revision %d: %w", key, revision, old.Revision, registry.ErrConflict)
		}
		return t.delete(key, old)
	})
}

// Renew extends the lease of a run-time registration to now + ttl and sets
// Lease.TTL to ttl. A provider without a lease is not a run-time
// registration: Renew leaves it alone and returns an error wrapping
// registry.ErrConflict.
func (s *Store) Renew(ctx context.Context, namespace, name string, ttl time.Duration) (registry.Provider, error) {
	key := registry.Key(namespace, name)
	var out registry.Provider
	err := s.update(ctx, func(t *txn) error {
		p, ok, err := t.get(key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("renew provider %s: %w", key, registry.ErrNotFound)
		}
		if p.Lease == nil {
			return fmt.Errorf("renew provider %s: it has no lease (it was not registered at run time): %w", key, registry.ErrConflict)
		}
		p.Lease = renewed(&registry.Lease{TTL: registry.Duration(ttl)}, s.opts.Now())
		out, err = t.put(key, p)
		return err
	})
	if err != nil {
		return registry.Provider{}, err
	}
	return out, nil
}

// renewed returns a new lease with l's TTL that expires TTL after now, or
// nil. It never modifies l, which belongs to the caller.
func renewed(l *registry.Lease, now time.Time) *registry.Lease {
	if l == nil {
		return nil
	}
	return &registry.Lease{TTL: l.TTL, ExpiresAt: now.Add(time.Duration(l.TTL)).UTC().Round(0)}
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return registry.ErrClosed
	}
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return registry.ErrClosed
	}
	return err
}

// update runs fn in a write transaction under s.mu. fn changes providers
// through t; update then persists the new revision, compacts the event
// log, commits, and only after the commit updates the lease index and
// delivers the events to watchers.
func (s *Store) update(ctx context.Context, fn func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return registry.ErrClosed
	}
	t := &txn{leases: map[string]time.Time{}}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		t.meta = tx.Bucket(bucketMeta)
		t.providers = tx.Bucket(bucketProviders)
		t.log = tx.Bucket(bucketEvents)
		t.rev = getInt(t.meta, keyRevision)
		if err := fn(t); err != nil {
			return err
		}
		if len(t.events) == 0 {
			return nil
		}
		if err := putInt(t.meta, keyRevision, t.rev); err != nil {
			return err
		}
		return t.compact(s.opts.MaxEvents)
	})
	if err != nil {
		return err
	}
	for k, exp := range t.leases {
		if exp.IsZero() {
			delete(s.leases, k)
		} else {
			s.leases[k] = exp
		}
	}
	for _, ev := range t.events {
		s.hub.Publish(ev)
	}
	return nil
}

// txn is one write transaction: the changes it makes and the events and
// lease changes they produce.
type txn struct {
	meta, providers, log *bbolt.Bucket
	rev                  int64
	events               []registry.Event
	leases               map[string]time.Time // zero: no lease any more
}

func (t *txn) get(key string) (registry.Provider, bool, error) {
	v := t.providers.Get([]byte(key))
	if v == nil {
		return registry.Provider{}, false, nil
	}
	var p registry.Provider
	if err := decodeProvider(key, v, &p); err != nil {
		return registry.Provider{}, false, err
	}
	return p, true, nil
}

// put stores p under key at the next revision and returns what was stored.
func (t *txn) put(key string, p registry.Provider) (registry.Provider, error) {
	t.rev++
	p.Revision = t.rev
	b, err := json.Marshal(p)
	if err != nil {
		return registry.Provider{}, fmt.Errorf("encode provider %s: %w", key, err)
	}
	if err := t.providers.Put([]byte(key), b); err != nil {
		return registry.Provider{}, err
	}
	// Decode what was written, so that callers and watchers see exactly
	// what Get will return.
	var stored registry.Provider
	if err := decodeProvider(key, b, &stored); err != nil {
		return registry.Provider{}, err
	}
	if stored.Lease != nil {
		t.leases[key] = stored.Lease.ExpiresAt
	} else {
		t.leases[key] = time.Time{}
	}
	if err := t.append(registry.Put, b, stored); err != nil {
		return registry.Provider{}, err
	}
	return stored.Clone(), nil
}

// delete removes the provider last stored as old under key at the next
// revision.
func (t *txn) delete(key string, old registry.Provider) error {
	t.rev++
	old.Revision = t.rev
	b, err := json.Marshal(old)
	if err != nil {
		return fmt.Errorf("encode provider %s: %w", key, err)
	}
	if err := t.providers.Delete([]byte(key)); err != nil {
		return err
	}
	t.leases[key] = time.Time{}
	return t.append(registry.Delete, b, old)
}

// eventRecord is an event as the log stores it; the key is the revision.
type eventRecord struct {
	Type     registry.EventType `json:"type"`
	Provider json.RawMessage    `json:"provider"`
}

func (t *txn) append(typ registry.EventType, provider []byte, p registry.Provider) error {
	b, err := json.Marshal(eventRecord{Type: typ, Provider: provider})
	if err != nil {
		return fmt.Errorf("encode event %d: %w", t.rev, err)
	}
	if err := t.log.Put(revKey(t.rev), b); err != nil {
		return err
	}
	t.events = append(t.events, registry.Event{Type: typ, Provider: p, Revision: t.rev})
	return nil
}

// compact drops the oldest events so that the log keeps at most max, and
// records the revision up to which it dropped them.
func (t *txn) compact(max int) error {
	compacted := getInt(t.meta, keyCompacted)
	target := t.rev - int64(max)
	if target <= compacted {
		return nil
	}
	c := t.log.Cursor()
	for k, _ := c.First(); k != nil && revOf(k) <= target; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return putInt(t.meta, keyCompacted, target)
}

func decodeProvider(key string, v []byte, p *registry.Provider) error {
	if err := json.Unmarshal(v, p); err != nil {
		return fmt.Errorf("decode provider %s: %w", key, err)
	}
	return nil
}

func revKey(rev int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(rev))
}

func revOf(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k))
}

func getInt(b *bbolt.Bucket, key []byte) int64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return revOf(v)
}

func putInt(b *bbolt.Bucket, key []byte, n int64) error {
	return b.Put(key, revKey(n))
}
