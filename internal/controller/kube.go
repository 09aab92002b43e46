package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	sbv1 "ddi.dev/ddi/api/servicebinding/v1"
	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/podauth"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/kube"
	"ddi.dev/ddi/internal/servicebinding"
)

// addAPIToScheme registers ddi's custom resources and the Service Binding
// resources.
func addAPIToScheme(s *runtime.Scheme) error {
	if err := v1alpha1.AddToScheme(s); err != nil {
		return err
	}
	return sbv1.AddToScheme(s)
}

// newKubeStore opens the registry store on Provider custom resources,
// keeping inline Secrets in namespace (the controller's own). It reads the
// API server directly (the store keeps its own index and watch) and is
// closed when the manager stops.
func newKubeStore(ctx context.Context, mgr manager.Manager, namespace string, log *slog.Logger) (registry.Store, error) {
	c, err := kube.NewClient(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	s, err := kube.New(ctx, c, kube.Options{SecretNamespace: namespace, Logger: log.With("component", "store")})
	if err != nil {
		return nil, fmt.Errorf("open the Provider store: %w", err)
	}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		<-ctx.Done()
		return s.Close()
	})); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// dependencySource returns the dependencies that DependencySets in a pod's
// namespace declare for it, in DependencySet name order (the first one to
// name an alias wins). A DependencySet with an invalid dependency is
// skipped; its status says why.
func dependencySource(c client.Reader) podauth.DependencySource {
	return func(ctx context.Context, pod *corev1.Pod) ([]registry.Dependency, error) {
		var list v1alpha1.DependencySetList
		if err := c.List(ctx, &list, client.InNamespace(pod.Namespace)); err != nil {
			return nil, fmt.Errorf("list dependency sets: %w", err)
		}
		sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
		var out []registry.Dependency
		seen := map[string]bool{}
		for i := range list.Items {
			ds := &list.Items[i]
			sel, err := metav1.LabelSelectorAsSelector(&ds.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
				continue
			}
			deps, err := kube.Dependencies(ds)
			if err != nil {
				continue
			}
			for _, d := range deps {
				if !seen[d.Alias] {
					seen[d.Alias] = true
					out = append(out, d)
				}
			}
		}
		return out, nil
	}
}

// setupReconcilers registers the Provider, DependencySet and
// ServiceBinding reconcilers.
func setupReconcilers(mgr manager.Manager, cp *controlplane.Server, o Options, log *slog.Logger) error {
	pr := &ProviderReconciler{
		Client: mgr.GetClient(),
		Events: mgr.GetEventRecorder("ddi-controller"),
		Logger: log.With("component", "provider-reconciler"),
	}
	if err := pr.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("provider reconciler: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	if err := mgr.Add(&knativeFollower{discovery: dc, interval: o.KnativeDiscovery, watch: pr.WatchKnativeServices,
		log: log.With("component", "knative-follower")}); err != nil {
		return fmt.Errorf("knative follower: %w", err)
	}
	if err := (&DependencySetReconciler{
		Client: mgr.GetClient(),
		Events: mgr.GetEventRecorder("ddi-controller"),
		Logger: log.With("component", "dependencyset-reconciler"),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("dependencyset reconciler: %w", err)
	}
	if err := (&servicebinding.Reconciler{
		Client: mgr.GetClient(),
		Events: mgr.GetEventRecorder("ddi-servicebinding"),
		Logger: log.With("component", "servicebinding-reconciler"),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("servicebinding reconciler: %w", err)
	}
	// Every replica ends its own streams when a DependencySet changes.
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		return followDependencySets(ctx, mgr.GetCache(), cp.Disconnect, log.With("component", "dependencyset-follower"))
	}))
}
