package kube

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// secretCache holds the data of inline Secrets by namespace/name. The
// store creates them immutable under fresh random names, so an entry never
// goes stale; it is bounded and dropped in bulk when full.
type secretCache struct {
	mu  sync.Mutex
	max int
	m   map[string]cachedSecret
}

type cachedSecret struct {
	owner types.UID // "" while this store creates the Provider that owns it
	data  map[string]string
}

func newSecretCache(max int) *secretCache {
	return &secretCache{max: max, m: map[string]cachedSecret{}}
}

func (c *secretCache) get(namespace, name string, owner types.UID) (map[string]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[namespace+"/"+name]
	if !ok || (e.owner != "" && e.owner != owner) {
		return nil, false
	}
	return maps.Clone(e.data), true
}

func (c *secretCache) put(namespace, name string, owner types.UID, data map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[namespace+"/"+name] = cachedSecret{owner: owner, data: maps.Clone(data)}
}

func (c *secretCache) drop(namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, namespace+"/"+name)
}

// newSecretName returns a fresh name for the inline Secret of a provider.
func newSecretName(provider string) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789" // no vowels: no words
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return provider + "-secret-" + string(b)
}

// createSecret creates the immutable Secret name holding data, owned by
// the Provider obj so that it goes with it.
func (s *Store) createSecret(ctx context.Context, obj *v1alpha1.Provider, name string, data map[string]string) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: obj.Namespace,
			Name:      name,
			Labels:    map[string]string{v1alpha1.LabelSecretOf: obj.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(),
				Kind:       "Provider",
				Name:       obj.Name,
				UID:        obj.UID,
				Controller: ptr.To(true),
			}},
		},
		Type:      SecretType,
		Immutable: ptr.To(true),
		Data:      make(map[string][]byte, len(data)),
	}
	for k, v := range data {
		sec.Data[k] = []byte(v)
	}
	if err := s.c.Create(ctx, sec); err != nil {
		return fmt.Errorf("create Secret %s/%s for the secret material of provider %s: %w", obj.Namespace, name, obj.Name, err)
	}
	s.secrets.put(obj.Namespace, name, obj.UID, data)
	return nil
}

// deleteSecret deletes an inline Secret the Provider no longer uses. A
// failure is only logged: the garbage collector removes the Secret with
// the Provider anyway.
func (s *Store) deleteSecret(ctx context.Context, namespace, name string) {
	s.secrets.drop(namespace, name)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := s.c.Delete(ctx, sec); err != nil && !apierrors.IsNotFound(err) {
		s.log.Warn("delete superseded inline Secret", "secret", namespace+"/"+name, "err", err)
	}
}

// inlineSecret returns the secret material of a Provider: the data of the
// Secret named by its ddi.dev/inline-secret annotation, or nil. A Secret
// that is not labelled for and owned by this Provider is ignored, so the
// annotation cannot pull in an arbitrary Secret. When wait is true and the
// Provider is young, a missing Secret is waited for briefly (see
// youngProvider); a Secret that stays missing is logged and read as none.
func (s *Store) inlineSecret(ctx context.Context, obj *v1alpha1.Provider, wait bool) (map[string]string, error) {
	name := obj.Annotations[v1alpha1.AnnotationInlineSecret]
	if name == "" {
		return nil, nil
	}
	if data, ok := s.secrets.get(obj.Namespace, name, obj.UID); ok {
		return data, nil
	}
	key := client.ObjectKey{Namespace: obj.Namespace, Name: name}
	wait = wait && s.opts.Now().Sub(obj.CreationTimestamp.Time) < youngProvider
	deadline := time.Now().Add(s.opts.SecretWait)
	for {
		var sec corev1.Secret
		err := s.c.Get(ctx, key, &sec)
		switch {
		case err == nil:
			if sec.Labels[v1alpha1.LabelSecretOf] != obj.Name || !ownedBy(&sec, obj.UID) {
				s.log.Warn("ignoring an inline Secret the provider does not own", "provider", obj.Namespace+"/"+obj.Name, "secret", name)
				return nil, nil
			}
			data := secretData(&sec)
			s.secrets.put(obj.Namespace, name, obj.UID, data)
			return data, nil
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("read the inline Secret %s of provider %s/%s: %w", name, obj.Namespace, obj.Name, err)
		case !wait || time.Now().After(deadline):
			s.log.Warn("inline Secret of provider is missing; reading it without secret material", "provider", obj.Namespace+"/"+obj.Name, "secret", name)
			return nil, nil
		}
		// The Secret may be created just after its Provider: look again.
		if data, ok := s.secrets.get(obj.Namespace, name, obj.UID); ok {
			return data, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ownedBy(obj metav1.Object, uid types.UID) bool {
	for _, r := range obj.GetOwnerReferences() {
		if r.UID == uid {
			return true
		}
	}
	return false
}
