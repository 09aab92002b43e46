package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/watchhub"
)

// Defaults for the zero fields of Options.
const (
	DefaultSweepInterval = time.Second
	DefaultMaxEvents     = 10000
	DefaultWatchBuffer   = 1024
	DefaultSecretWait    = 2 * time.Second
	DefaultListPageSize  = 500
	// DefaultSecretNamespace is where inline Secrets go by default:
	// the namespace deploy/ installs ddi into.
	DefaultSecretNamespace = "ddi-system"
)

// maxRetries bounds the read-modify-write loops of unconditional writes.
const maxRetries = 16

// Options configure a Store. The zero value gives the defaults.
type Options struct {
	// Labels partition the cluster's Providers between registries: when
	// set, the store puts them on every Provider it creates and sees only
	// Providers that carry all of them (Get, Update and Delete of another
	// Provider return registry.ErrNotFound). Names are still unique per
	// namespace across partitions. Empty: every Provider in the cluster.
	Labels map[string]string
	// SweepInterval is how often the store deletes Providers whose lease
	// has passed.
	SweepInterval time.Duration
	// MaxEvents is how many recent events the store keeps for Watch; a
	// Watch from an older revision fails with registry.ErrCompacted.
	MaxEvents int
	// WatchBuffer is how many live events a watcher may have unread before
	// the store closes its channel.
	WatchBuffer int
	// SecretWait is how long a read waits for the inline Secret of a
	// Provider that another process has just created (see doc.go).
	SecretWait time.Duration
	// ListPageSize is the page size of List requests.
	ListPageSize int64
	// SecretNamespace is the namespace of the Secrets that hold inline
	// secret material (see doc.go): ddi's own, so that the store needs to
	// create and delete Secrets nowhere else. It must exist.
	SecretNamespace string
	// Logger receives lease expiries, watch restarts and background
	// failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock used for leases; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = DefaultWatchBuffer
	}
	if o.SecretWait <= 0 {
		o.SecretWait = DefaultSecretWait
	}
	if o.ListPageSize <= 0 {
		o.ListPageSize = DefaultListPageSize
	}
	if o.SecretNamespace == "" {
		o.SecretNamespace = DefaultSecretNamespace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Labels = maps.Clone(o.Labels)
	return o
}

// Store is a registry.Store on Provider custom resources. Its methods are
// safe for concurrent use.
type Store struct {
	c        client.WithWatch
	opts     Options
	log      *slog.Logger
	selector labels.Selector
	secrets  *secretCache
	gone     chan goneSecret // inline Secrets of deleted Providers, to delete

	closed atomic.Bool // set under mu

	// mu guards the event log and the lease index, which the watch loop
	// feeds, and orders the registration of watchers with the delivery of
	// events, so that a Watch sees each event either in its replay or
	// live, never both and never neither.
	mu       sync.Mutex
	events   []registry.Event // the log: every event after logStart, in order
	logStart int64            // revision after which the log is complete
	lastRev  int64            // last revision the watch loop has seen
	hub      *watchhub.Hub
	leases   map[string]leaseEntry // key -> expiry of leased providers

	cancel context.CancelFunc // ends the watch loop, the sweeper and the cleanup
	done   sync.WaitGroup
}

type leaseEntry struct {
	expires  time.Time
	revision int64
}

var _ registry.Store = (*Store)(nil)

// NewClient returns a client for New from a REST config: a direct client
// (no cache) that knows core and ddi.dev types. A config without rate
// limits gets 50 requests per second with bursts of 100, instead of
// client-go's 5.
func NewClient(cfg *rest.Config) (client.WithWatch, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS, cfg.Burst = 50, 100
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}

// New lists the Providers, starts the watch that feeds Watch, the lease
// sweeper and the cleanup of inline Secrets, and returns the store. c must read from the API server, not
// from a cache (see NewClient), and know the core and ddi.dev types; ctx
// bounds only the initial list. Close the store to stop its goroutines.
func New(ctx context.Context, c client.WithWatch, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	for _, obj := range []runtime.Object{&v1alpha1.Provider{}, &corev1.Secret{}} {
		if _, _, err := c.Scheme().ObjectKinds(obj); err != nil {
			return nil, fmt.Errorf("kube store: the client's scheme lacks a type it needs: %w (build the client with NewClient)", err)
		}
	}
	sel, err := labels.ValidatedSelectorFromSet(opts.Labels)
	if err != nil {
		return nil, fmt.Errorf("kube store: partition labels: %w", err)
	}
	s := &Store{
		c:        c,
		opts:     opts,
		log:      opts.Logger,
		selector: sel,
		secrets:  newSecretCache(4096),
		gone:     make(chan goneSecret, 1024),
		hub:      watchhub.New(opts.WatchBuffer, opts.Logger),
	}
	rev, err := s.resync(ctx)
	if err != nil {
		return nil, err
	}
	loop, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(3)
	go func() {
		defer s.done.Done()
		s.watchLoop(loop, rev)
	}()
	go func() {
		defer s.done.Done()
		s.sweep(loop)
	}()
	go func() {
		defer s.done.Done()
		s.cleanup(loop)
	}()
	return s, nil
}

// Close stops the watch loop, the sweeper and the cleanup and closes every watch
// channel. Later calls do nothing; other methods then return
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
	s.cancel()
	s.done.Wait()
	return nil
}

func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return registry.ErrClosed
	}
	return nil
}

// Get returns one provider or registry.ErrNotFound.
func (s *Store) Get(ctx context.Context, namespace, name string) (registry.Provider, error) {
	if err := s.check(ctx); err != nil {
		return registry.Provider{}, err
	}
	obj, err := s.getObject(ctx, namespace, name)
	if err != nil {
		return registry.Provider{}, fmt.Errorf("get provider %s: %w", registry.Key(namespace, name), err)
	}
	return s.toProvider(ctx, obj, true)
}

// getObject reads a Provider from the API server; one outside the store's
// partition is registry.ErrNotFound.
func (s *Store) getObject(ctx context.Context, namespace, name string) (*v1alpha1.Provider, error) {
	if namespace == "" {
		namespace = registry.DefaultNamespace
	}
	var obj v1alpha1.Provider
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &obj); err != nil {
		return nil, mapError(err)
	}
	if !s.selector.Matches(labels.Set(obj.Labels)) {
		return nil, fmt.Errorf("it lacks the store's partition labels %s: %w", s.selector, registry.ErrNotFound)
	}
	return &obj, nil
}

// toProvider converts obj and reads its inline secret material.
func (s *Store) toProvider(ctx context.Context, obj *v1alpha1.Provider, wait bool) (registry.Provider, error) {
	p, err := FromObject(obj)
	if err != nil {
		return registry.Provider{}, err
	}
	if p.Secret, err = s.inlineSecret(ctx, obj, wait); err != nil {
		return registry.Provider{}, err
	}
	return p, nil
}

// List returns every provider sorted by namespace/name, and the revision
// of the list (the API server's list resourceVersion).
func (s *Store) List(ctx context.Context) ([]registry.Provider, int64, error) {
	if err := s.check(ctx); err != nil {
		return nil, 0, err
	}
	objs, rev, err := s.listObjects(ctx)
	if err != nil {
		return nil, 0, err
	}
	out := make([]registry.Provider, 0, len(objs))
	for i := range objs {
		p, err := s.toProvider(ctx, &objs[i], true)
		if err != nil {
			return nil, 0, fmt.Errorf("list providers: %w", err)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b registry.Provider) int {
		return strings.Compare(a.Key(), b.Key())
	})
	return out, rev, nil
}

// listObjects lists the partition's Providers page by page; every page is
// read at the first page's resourceVersion.
func (s *Store) listObjects(ctx context.Context) ([]v1alpha1.Provider, int64, error) {
	var (
		objs []v1alpha1.Provider
		rev  int64
		cont string
	)
	for {
		var list v1alpha1.ProviderList
		err := s.c.List(ctx, &list, &client.ListOptions{LabelSelector: s.selector, Limit: s.opts.ListPageSize, Continue: cont})
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil, 0, fmt.Errorf("list providers: %w (is the Provider CRD installed? kubectl apply -f deploy/crd)", err)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("list providers: %w", mapError(err))
		}
		if rev == 0 {
			if rev, err = parseRevision(list.ResourceVersion); err != nil {
				return nil, 0, fmt.Errorf("list providers: %w", err)
			}
		}
		objs = append(objs, list.Items...)
		if cont = list.Continue; cont == "" {
			return objs, rev, nil
		}
	}
}

// Create stores a new provider, or returns registry.ErrExists. A provider
// with a Lease gets a renew time of now, so Lease.ExpiresAt = now + TTL.
// Inline secret material (p.Secret) goes to a Secret made for the Provider.
func (s *Store) Create(ctx context.Context, p registry.Provider) (registry.Provider, error) {
	if err := s.check(ctx); err != nil {
		return registry.Provider{}, err
	}
	if p.Namespace == "" {
		p.Namespace = registry.DefaultNamespace
	}
	key := p.Key()
	obj := &v1alpha1.Provider{}
	if err := applyProvider(obj, &p, s.opts.Now()); err != nil {
		return registry.Provider{}, fmt.Errorf("create provider %s: %w", key, err)
	}
	if len(s.opts.Labels) > 0 {
		obj.Labels = maps.Clone(s.opts.Labels)
	}
	secretName := ""
	if len(p.Secret) > 0 {
		secretName = newSecretName(p.Namespace, p.Name)
		setAnnotation(obj, v1alpha1.AnnotationInlineSecret, secretName)
		// Watchers of this store find the material here before the
		// Secret exists (its random name is this Create's own).
		s.secrets.put(secretName, cachedSecret{provider: key, data: p.Secret})
	}
	if err := s.c.Create(ctx, obj); err != nil {
		if secretName != "" {
			s.secrets.drop(secretName)
		}
		if apierrors.IsNotFound(err) {
			// The only thing a create can miss is its namespace.
			return registry.Provider{}, fmt.Errorf("create provider %s: %w", key, &registry.FieldError{
				Field: "namespace", Value: p.Namespace, Reason: "does not exist in the cluster: create the namespace first"})
		}
		return registry.Provider{}, fmt.Errorf("create provider %s: %w", key, mapError(err))
	}
	if secretName != "" {
		if err := s.createSecret(ctx, obj, secretName, p.Secret); err != nil {
			s.secrets.drop(secretName)
			// Undo the Provider, so that a failed Create leaves nothing.
			pre := &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &obj.UID}}
			if derr := s.c.Delete(context.WithoutCancel(ctx), obj, pre); derr != nil && !apierrors.IsNotFound(derr) {
				s.log.Error("undo the Provider of a failed create", "provider", key, "err", derr)
			}
			return registry.Provider{}, fmt.Errorf("create provider %s: %w", key, err)
		}
	}
	out, err := FromObject(obj)
	if err != nil {
		return registry.Provider{}, fmt.Errorf("create provider %s: %w", key, err)
	}
	out.Secret = maps.Clone(p.Secret)
	return out, nil
}

// Update replaces a provider. A non-zero p.Revision must equal the stored
// revision, or Update returns registry.ErrConflict; revision 0 writes
// unconditionally. A lease is renewed from now. Metadata that others own
// (their labels, annotations, finalizers, owner references) is kept, and
// so is a serviceRef: the endpoints of such a Provider are derived by the
// controller, and p.Endpoints are ignored.
func (s *Store) Update(ctx context.Context, p registry.Provider) (registry.Provider, error) {
	if err := s.check(ctx); err != nil {
		return registry.Provider{}, err
	}
	if p.Namespace == "" {
		p.Namespace = registry.DefaultNamespace
	}
	key := p.Key()
	for attempt := 0; ; attempt++ {
		cur, err := s.getObject(ctx, p.Namespace, p.Name)
		if err != nil {
			return registry.Provider{}, fmt.Errorf("update provider %s: %w", key, err)
		}
		curRev, err := Revision(cur)
		if err != nil {
			return registry.Provider{}, fmt.Errorf("update provider %s: %w", key, err)
		}
		if p.Revision != 0 && p.Revision != curRev {
			return registry.Provider{}, fmt.Errorf("update provider %s at revision %d: it is at revision %d: %w", key, p.Revision, curRev, registry.ErrConflict)
		}
		out, err := s.update(ctx, cur, &p)
		if errors.Is(err, registry.ErrConflict) && p.Revision == 0 && attempt < maxRetries {
			continue // someone else wrote in between: read again
		}
		if err != nil {
			return registry.Provider{}, fmt.Errorf("update provider %s: %w", key, err)
		}
		return out, nil
	}
}

// update writes p over the stored object cur, at cur's resourceVersion.
func (s *Store) update(ctx context.Context, cur *v1alpha1.Provider, p *registry.Provider) (registry.Provider, error) {
	obj := cur.DeepCopy()
	if err := applyProvider(obj, p, s.opts.Now()); err != nil {
		return registry.Provider{}, err
	}
	oldSecret := cur.Annotations[v1alpha1.AnnotationInlineSecret]
	oldData, err := s.inlineSecret(ctx, cur, true)
	if err != nil {
		return registry.Provider{}, err
	}
	newSecret := ""
	switch {
	case len(p.Secret) == 0:
		delete(obj.Annotations, v1alpha1.AnnotationInlineSecret)
	case oldSecret != "" && maps.Equal(oldData, p.Secret):
		// Unchanged: keep the Secret.
	default:
		// Secrets are immutable: write the new material to a new one,
		// before the Provider points at it.
		newSecret = newSecretName(p.Namespace, p.Name)
		if err := s.createSecret(ctx, obj, newSecret, p.Secret); err != nil {
			return registry.Provider{}, err
		}
		setAnnotation(obj, v1alpha1.AnnotationInlineSecret, newSecret)
	}
	if err := s.c.Update(ctx, obj); err != nil {
		if newSecret != "" {
			s.deleteSecret(context.WithoutCancel(ctx), newSecret, obj)
		}
		return registry.Provider{}, mapError(err)
	}
	if oldSecret != "" && oldSecret != obj.Annotations[v1alpha1.AnnotationInlineSecret] {
		// Only if the store made it for this Provider: the annotation
		// may have been pointed at any Secret.
		s.deleteSecret(context.WithoutCancel(ctx), oldSecret, cur)
	}
	out, err := FromObject(obj)
	if err != nil {
		return registry.Provider{}, err
	}
	out.Secret = maps.Clone(p.Secret)
	return out, nil
}

// Delete removes a provider. A non-zero revision must equal the stored
// revision, or Delete returns registry.ErrConflict. Its inline Secret is
// deleted when the store's watch sees the Provider go.
func (s *Store) Delete(ctx context.Context, namespace, name string, revision int64) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	key := registry.Key(namespace, name)
	if namespace == "" {
		namespace = registry.DefaultNamespace
	}
	pre := &metav1.Preconditions{}
	if len(s.opts.Labels) > 0 {
		// Only a Provider of the partition may be deleted: check, and
		// make sure the object checked is the one deleted.
		cur, err := s.getObject(ctx, namespace, name)
		if err != nil {
			return fmt.Errorf("delete provider %s: %w", key, err)
		}
		pre.UID = &cur.UID
	}
	if revision != 0 {
		rv := strconv.FormatInt(revision, 10)
		pre.ResourceVersion = &rv
	}
	obj := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := s.c.Delete(ctx, obj, &client.DeleteOptions{Preconditions: pre}); err != nil {
		if revision != 0 && apierrors.IsConflict(err) {
			return fmt.Errorf("delete provider %s at revision %d: it is at another revision: %w", key, revision, registry.ErrConflict)
		}
		return fmt.Errorf("delete provider %s: %w", key, mapError(err))
	}
	return nil
}

// Renew extends the lease of a run-time registration to now + ttl and sets
// its TTL to ttl. A provider without a lease is not a run-time
// registration: Renew leaves it alone and returns an error wrapping
// registry.ErrConflict.
func (s *Store) Renew(ctx context.Context, namespace, name string, ttl time.Duration) (registry.Provider, error) {
	if err := s.check(ctx); err != nil {
		return registry.Provider{}, err
	}
	key := registry.Key(namespace, name)
	for attempt := 0; ; attempt++ {
		cur, err := s.getObject(ctx, namespace, name)
		if err != nil {
			return registry.Provider{}, fmt.Errorf("renew provider %s: %w", key, err)
		}
		if cur.Spec.Lease == nil {
			return registry.Provider{}, fmt.Errorf("renew provider %s: it has no lease (it was not registered at run time): %w", key, registry.ErrConflict)
		}
		obj := cur.DeepCopy()
		now := s.opts.Now()
		obj.Spec.Lease = &v1alpha1.Lease{TTL: metav1.Duration{Duration: ttl}, RenewTime: ptr.To(metav1.NewMicroTime(now))}
		markWritten(obj, now)
		err = s.c.Update(ctx, obj)
		if apierrors.IsConflict(err) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return registry.Provider{}, fmt.Errorf("renew provider %s: %w", key, mapError(err))
		}
		return s.toProvider(ctx, obj, true)
	}
}

// mapError maps API errors to the registry's sentinels: 404 to
// ErrNotFound, 409 AlreadyExists to ErrExists, other 409s to ErrConflict,
// and 422 Invalid to a *registry.FieldError naming the field the API
// server refused.
func mapError(err error) error {
	var status apierrors.APIStatus
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w", apiMessage(err), registry.ErrNotFound)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s: %w", apiMessage(err), registry.ErrExists)
	case apierrors.IsConflict(err):
		return fmt.Errorf("%s: %w", apiMessage(err), registry.ErrConflict)
	case apierrors.IsInvalid(err) && errors.As(err, &status):
		if d := status.Status().Details; d != nil && len(d.Causes) > 0 {
			c := d.Causes[0]
			return &registry.FieldError{Field: c.Field, Reason: "is refused by the API server: " + withoutValue(c.Message)}
		}
	}
	return err
}

// withoutValue drops the value the API server quotes in a cause
// ("Invalid value: \"postgres://user:pass@db\": url must not ..."): it may
// hold credentials, and the field is named anyway.
func withoutValue(msg string) string {
	rest, ok := strings.CutPrefix(msg, "Invalid value: ")
	if !ok {
		return msg
	}
	if q, err := strconv.QuotedPrefix(rest); err == nil {
		rest = strings.TrimPrefix(rest[len(q):], ": ")
	}
	return rest
}

func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}
