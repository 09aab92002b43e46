package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NamespaceCache looks namespaces up in a cache (a manager's client) and
// falls back to a direct read when the cache has not seen the namespace yet,
// as when a namespace and its first pod are created back to back.
type NamespaceCache struct {
	Cache client.Reader
	// API reads past the cache; nil disables the fallback.
	API client.Reader
}

// NamespaceLabels returns the labels of namespace name.
func (n NamespaceCache) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	var ns corev1.Namespace
	err := n.Cache.Get(ctx, client.ObjectKey{Name: name}, &ns)
	if apierrors.IsNotFound(err) && n.API != nil {
		err = n.API.Get(ctx, client.ObjectKey{Name: name}, &ns)
	}
	if err != nil {
		return nil, fmt.Errorf("get namespace %s: %w", name, err)
	}
	return ns.Labels, nil
}
