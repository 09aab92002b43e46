package controller

import (
	"context"
	"fmt"
	"log/slog"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
)

// followDependencySets ends, on the replica it runs on, the streams of the
// sidecars a changed DependencySet may concern, so that they reconnect and
// are identified with their new dependencies. It runs on every replica:
// each replica serves its own streams, and the reconcilers run only on the
// leader.
//
// A new spec (a generation change), a new DependencySet and a deleted one
// end the streams of its namespace (a changed selector may also release
// pods the old one selected; the whole namespace covers both). The
// initial listing ends nothing: streams opened before it was complete
// were identified against the API server's current state.
func followDependencySets(ctx context.Context, c cache.Cache, disconnect func(match func(registry.Consumer) bool) int, log *slog.Logger) error {
	inf, err := c.GetInformer(ctx, &v1alpha1.DependencySet{})
	if err != nil {
		return fmt.Errorf("watch dependency sets: %w", err)
	}
	end := func(obj any, why string) {
		ds, ok := obj.(*v1alpha1.DependencySet)
		if !ok {
			tomb, ok := obj.(toolscache.DeletedFinalStateUnknown)
			if !ok {
				return
			}
			if ds, ok = tomb.Obj.(*v1alpha1.DependencySet); !ok {
				return
			}
		}
		ns := ds.Namespace
		if n := disconnect(func(c registry.Consumer) bool { return c.Namespace == ns }); n > 0 {
			log.Info("dependency set changed; sidecars reconnect", "dependencyset", ns+"/"+ds.Name, "change", why, "streams", n)
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if !initial {
				end(obj, "created")
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*v1alpha1.DependencySet)
			n, ok2 := newObj.(*v1alpha1.DependencySet)
			if ok1 && ok2 && o.Generation != n.Generation {
				end(newObj, "spec")
			}
		},
		DeleteFunc: func(obj any) { end(obj, "deleted") },
	})
	if err != nil {
		return fmt.Errorf("watch dependency sets: %w", err)
	}
	<-ctx.Done()
	_ = inf.RemoveEventHandler(reg)
	return nil
}
