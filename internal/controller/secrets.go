package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/registry"
)

// SecretReader is the controlplane.SecretSource on Kubernetes: it reads the
// Secret a provider's secretRef names, in the provider's namespace, and
// returns only the keys the reference lists (every key when it lists
// none). The control plane calls it only for consumers whose scope admits
// them, on their own stream.
//
// Reader should be uncached (a manager's APIReader): the controller then
// needs only "get" on Secrets, never list or watch.
type SecretReader struct {
	Reader client.Reader
}

var _ controlplane.SecretSource = SecretReader{}

// Secret returns the referenced data.
func (s SecretReader) Secret(ctx context.Context, p *registry.Provider) (map[string]string, error) {
	if p.SecretRef == nil {
		return nil, nil
	}
	var sec corev1.Secret
	if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.SecretRef.Name}, &sec); err != nil {
		return nil, fmt.Errorf("get secret %s/%s: %w", p.Namespace, p.SecretRef.Name, err)
	}
	out := make(map[string]string)
	if len(p.SecretRef.Keys) == 0 {
		for k, v := range sec.Data {
			out[k] = string(v)
		}
		return out, nil
	}
	for _, k := range p.SecretRef.Keys {
		v, ok := sec.Data[k]
		if !ok {
			return nil, fmt.Errorf("secret %s/%s has no key %q", p.Namespace, p.SecretRef.Name, k)
		}
		out[k] = string(v)
	}
	return out, nil
}
