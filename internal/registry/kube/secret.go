package kube

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
)

// SecretType is the type of the Secrets the store creates for inline
// secret material.
const SecretType corev1.SecretType = "ddi.dev/inline-secret"

// youngProvider is how recently a Provider must have been created for a
// read to wait for its inline Secret: Create writes the Provider first and
// the Secret right after, so another process may read in between.
const youngProvider = 10 * time.Second

// Orphaned inline Secrets: how often the store looks for them, and how old
// one must be before it counts as orphaned (a younger one may belong to a
// Create or Update still under way).
const (
	orphanInterval = 10 * time.Minute
	orphanGrace    = 2 * time.Minute
)

// secretCache holds the data of inline Secrets by name. The store creates
// them immutable under fresh random names, so an entry never goes stale;
// it is bounded and dropped in bulk when full.
type secretCache struct {
	mu  sync.Mutex
	max int
	m   map[string]cachedSecret
}

type cachedSecret struct {
	// owner is the UID of the Provider the Secret belongs to. While this
	// store creates that Provider it has none yet, and provider (its
	// namespace/name) stands in.
	owner    types.UID
	provider string
	data     map[string]string
}

func newSecretCache(max int) *secretCache {
	return &secretCache{max: max, m: map[string]cachedSecret{}}
}

// get returns the cached data of Secret name if it belongs to obj.
func (c *secretCache) get(name string, obj *v1alpha1.Provider) (map[string]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[name]
	if !ok || e.owner != "" && e.owner != obj.UID || e.owner == "" && e.provider != obj.Namespace+"/"+obj.Name {
		return nil, false
	}
	return maps.Clone(e.data), true
}

func (c *secretCache) put(name string, e cachedSecret) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	e.data = maps.Clone(e.data)
	c.m[name] = e
}

func (c *secretCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}

// newSecretName returns a fresh name for the inline Secret of the provider
// namespace/name: both names, shortened if need be, and a random suffix.
func newSecretName(namespace, name string) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789" // no vowels: no words
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	prefix := namespace + "." + name
	if max := validation.DNS1123SubdomainMaxLength - len(b) - 1; len(prefix) > max {
		prefix = strings.TrimRight(prefix[:max], "-.")
	}
	return prefix + "-" + string(b)
}

// ownsSecret reports whether sec is an inline Secret this store made for
// the Provider obj: its type, and its ddi.dev/secret-of label naming obj's
// UID. Only such a Secret is read as obj's material or deleted for it.
func ownsSecret(obj *v1alpha1.Provider, sec *corev1.Secret) bool {
	return obj.UID != "" && sec.Type == SecretType && sec.Labels[v1alpha1.LabelSecretOf] == string(obj.UID)
}

// createSecret creates the immutable inline Secret name holding data for
// the Provider obj, in the store's secret namespace.
func (s *Store) createSecret(ctx context.Context, obj *v1alpha1.Provider, name string, data map[string]string) error {
	lbls := maps.Clone(s.opts.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[v1alpha1.LabelSecretOf] = string(obj.UID)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   s.opts.SecretNamespace,
			Name:        name,
			Labels:      lbls,
			Annotations: map[string]string{v1alpha1.AnnotationSecretProvider: obj.Namespace + "/" + obj.Name},
		},
		Type:      SecretType,
		Immutable: ptr.To(true),
		Data:      make(map[string][]byte, len(data)),
	}
	for k, v := range data {
		sec.Data[k] = []byte(v)
	}
	if err := s.c.Create(ctx, sec); err != nil {
		return fmt.Errorf("create Secret %s/%s for the secret material of provider %s/%s: %w", s.opts.SecretNamespace, name, obj.Namespace, obj.Name, err)
	}
	s.secrets.put(name, cachedSecret{owner: obj.UID, data: data})
	return nil
}

// deleteSecret deletes the inline Secret name of the Provider obj, which
// no longer uses it, if the store made it for obj (ownsSecret): whatever
// else the annotation names is left alone. The delete is conditional on
// the UID of the Secret checked. A failure is only logged: the orphan
// collector tries again later.
func (s *Store) deleteSecret(ctx context.Context, name string, obj *v1alpha1.Provider) {
	s.secrets.drop(name)
	var sec corev1.Secret
	err := s.c.Get(ctx, client.ObjectKey{Namespace: s.opts.SecretNamespace, Name: name}, &sec)
	switch {
	case apierrors.IsNotFound(err):
		return
	case err != nil:
		s.log.Warn("read an inline Secret to delete it", "secret", s.opts.SecretNamespace+"/"+name, "err", err)
		return
	case !ownsSecret(obj, &sec):
		s.log.Warn("not deleting a Secret the provider's annotation names: the store did not make it for this provider",
			"provider", obj.Namespace+"/"+obj.Name, "secret", s.opts.SecretNamespace+"/"+name)
		return
	}
	pre := &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sec.UID}}
	if err := s.c.Delete(ctx, &sec, pre); err != nil && !apierrors.IsNotFound(err) {
		s.log.Warn("delete an inline Secret the provider no longer uses", "secret", s.opts.SecretNamespace+"/"+name, "err", err)
	}
}

// inlineSecret returns the secret material of a Provider: the data of the
// Secret its ddi.dev/inline-secret annotation names in the store's secret
// namespace, or nil. A Secret the store did not make for this Provider
// (ownsSecret) is ignored, so the annotation cannot pull in another
// Secret. When wait is true and the Provider is young, a missing Secret is
// waited for briefly (see youngProvider); a Secret that stays missing is
// logged and read as none.
func (s *Store) inlineSecret(ctx context.Context, obj *v1alpha1.Provider, wait bool) (map[string]string, error) {
	name := obj.Annotations[v1alpha1.AnnotationInlineSecret]
	if name == "" {
		return nil, nil
	}
	if data, ok := s.secrets.get(name, obj); ok {
		return data, nil
	}
	key := client.ObjectKey{Namespace: s.opts.SecretNamespace, Name: name}
	wait = wait && s.opts.Now().Sub(obj.CreationTimestamp.Time) < youngProvider
	deadline := time.Now().Add(s.opts.SecretWait)
	for {
		var sec corev1.Secret
		err := s.c.Get(ctx, key, &sec)
		switch {
		case err == nil:
			if !ownsSecret(obj, &sec) {
				s.log.Warn("ignoring a Secret the provider's annotation names: the store did not make it for this provider",
					"provider", obj.Namespace+"/"+obj.Name, "secret", key.String())
				return nil, nil
			}
			data := secretData(&sec)
			s.secrets.put(name, cachedSecret{owner: obj.UID, data: data})
			return data, nil
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("read the inline Secret %s of provider %s/%s: %w", key, obj.Namespace, obj.Name, err)
		case !wait || time.Now().After(deadline):
			s.log.Warn("inline Secret of provider is missing; reading it without secret material", "provider", obj.Namespace+"/"+obj.Name, "secret", key.String())
			return nil, nil
		}
		// The Secret may be created just after its Provider: look again.
		if data, ok := s.secrets.get(name, obj); ok {
			return data, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// goneSecret is the inline Secret of a deleted Provider, to delete.
type goneSecret struct {
	name  string
	owner *v1alpha1.Provider
}

// forget queues the deletion of the inline Secret of a deleted Provider;
// when the queue is full, the orphan collector deletes it later.
func (s *Store) forget(obj *v1alpha1.Provider) {
	name := obj.Annotations[v1alpha1.AnnotationInlineSecret]
	if name == "" {
		return
	}
	select {
	case s.gone <- goneSecret{name: name, owner: obj}:
	default:
		s.log.Debug("inline Secret cleanup queue full; the orphan collector will delete it", "secret", name)
	}
}

// cleanup deletes the inline Secrets of deleted Providers as the watch
// loop queues them, and collects orphans at start and every
// orphanInterval, until ctx ends.
func (s *Store) cleanup(ctx context.Context) {
	s.collectOrphans(ctx)
	tick := time.NewTicker(orphanInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case g := <-s.gone:
			s.deleteSecret(ctx, g.name, g.owner)
		case <-tick.C:
			s.collectOrphans(ctx)
		}
	}
}

// collectOrphans deletes the inline Secrets of the store's partition that
// no Provider names any more: their Provider went while no store watched
// (a Kubernetes owner reference cannot reach from the secret namespace
// into the Provider's), or a write stopped half way. Secrets younger than
// orphanGrace are left alone.
func (s *Store) collectOrphans(ctx context.Context) {
	sel := s.selector.DeepCopySelector()
	req, err := labels.NewRequirement(v1alpha1.LabelSecretOf, selection.Exists, nil)
	if err != nil {
		s.log.Error("orphaned inline Secrets: selector", "err", err)
		return
	}
	sel = sel.Add(*req)
	var secrets []corev1.Secret
	for cont := ""; ; {
		var list corev1.SecretList
		if err := s.c.List(ctx, &list, &client.ListOptions{Namespace: s.opts.SecretNamespace, LabelSelector: sel, Limit: s.opts.ListPageSize, Continue: cont}); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("list inline Secrets to collect orphans", "namespace", s.opts.SecretNamespace, "err", err)
			}
			return
		}
		secrets = append(secrets, list.Items...)
		if cont = list.Continue; cont == "" {
			break
		}
	}
	if len(secrets) == 0 {
		return
	}
	// Listed after the Secrets: a Provider is created before its Secret,
	// so every Secret listed whose Provider exists finds it here.
	objs, _, err := s.listObjects(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("list providers to collect orphaned inline Secrets", "err", err)
		}
		return
	}
	named := make(map[types.UID]string, len(objs))
	for i := range objs {
		named[objs[i].UID] = objs[i].Annotations[v1alpha1.AnnotationInlineSecret]
	}
	now := s.opts.Now()
	for i := range secrets {
		sec := &secrets[i]
		owner := types.UID(sec.Labels[v1alpha1.LabelSecretOf])
		if sec.Type != SecretType || named[owner] == sec.Name || now.Sub(sec.CreationTimestamp.Time) < orphanGrace {
			continue
		}
		s.secrets.drop(sec.Name)
		pre := &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sec.UID}}
		if err := s.c.Delete(ctx, sec, pre); err != nil && !apierrors.IsNotFound(err) {
			s.log.Warn("delete an orphaned inline Secret", "secret", sec.Namespace+"/"+sec.Name, "err", err)
			continue
		}
		s.log.Info("deleted an orphaned inline Secret", "secret", sec.Namespace+"/"+sec.Name, "provider", sec.Annotations[v1alpha1.AnnotationSecretProvider])
	}
}
