package webhook

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ObjectChecker confirms through the API server that an object a request
// names is real, before the webhook records an Event about it.
type ObjectChecker interface {
	// Exists reports whether the object ref names exists in namespace
	// with ref's UID.
	Exists(ctx context.Context, namespace string, ref metav1.OwnerReference) (bool, error)
}

// APIObjects is the ObjectChecker of a running controller: it reads the
// object's metadata only, past any cache (a manager's APIReader), which
// takes "get" on the object's resource. An object the reader cannot map
// or may not read is not confirmed.
type APIObjects struct {
	Reader client.Reader
}

// Exists reads the object's metadata and compares its UID.
func (a APIObjects) Exists(ctx context.Context, namespace string, ref metav1.OwnerReference) (bool, error) {
	var obj metav1.PartialObjectMetadata
	obj.SetGroupVersionKind(schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind))
	err := a.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, &obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s %s/%s: %w", ref.Kind, namespace, ref.Name, err)
	}
	return obj.UID == ref.UID, nil
}
