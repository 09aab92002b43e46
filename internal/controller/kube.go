package controller

import (
	"errors"
	"log/slog"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/podauth"
	"ddi.dev/ddi/internal/registry"
)

// addAPIToScheme registers ddi's custom resources.
// TODO(kube): api/v1alpha1 is being written; register it here.
func addAPIToScheme(*runtime.Scheme) error { return nil }

// newKubeStore returns the registry store on Provider custom resources.
// TODO(kube): wire internal/registry/kube when it lands.
func newKubeStore(manager.Manager, *slog.Logger) (registry.Store, error) {
	return nil, errors.New("the Kubernetes store (internal/registry/kube) is not built in yet: pass Options.Store")
}

// KubeStoreBuiltIn reports whether Run can use the custom resource store
// when Options.Store is nil.
func KubeStoreBuiltIn() bool { return false }

func dependencySource(manager.Manager) podauth.DependencySource { return nil }

func setupReconcilers(manager.Manager, *controlplane.Server, *slog.Logger) error { return nil }
