package webhook

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// CABundleReconciler keeps the caBundle of every webhook in one
// MutatingWebhookConfiguration equal to Certs.CABundle. It reacts to
// changes of the configuration (an apply that reset caBundle) and of the
// certificates (a rotation).
type CABundleReconciler struct {
	Client client.Client
	Certs  *Certs
	// Name is the MutatingWebhookConfiguration's name.
	Name   string
	Logger *slog.Logger
}

// SetupWithManager registers the reconciler with mgr.
func (r *CABundleReconciler) SetupWithManager(mgr manager.Manager) error {
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	kicks := make(chan event.GenericEvent)
	obj := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: r.Name}}
	// The goroutine forwarding certificate changes belongs to the manager:
	// it ends with the manager's context.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-r.Certs.Changed():
				select {
				case kicks <- event.GenericEvent{Object: obj}:
				case <-ctx.Done():
					return nil
				}
			}
		}
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("cabundle").
		For(&admissionregistrationv1.MutatingWebhookConfiguration{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetName() == r.Name
		}))).
		WatchesRawSource(source.Channel(kicks, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// Reconcile patches the caBundle of every webhook of the configuration.
func (r *CABundleReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	bundle := r.Certs.CABundle()
	if len(bundle) == 0 {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := r.Client.Get(ctx, req.NamespacedName, &mwc); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	before := mwc.DeepCopy()
	changed := 0
	for i := range mwc.Webhooks {
		if !bytes.Equal(mwc.Webhooks[i].ClientConfig.CABundle, bundle) {
			mwc.Webhooks[i].ClientConfig.CABundle = bundle
			changed++
		}
	}
	if changed == 0 {
		return reconcile.Result{}, nil
	}
	// An optimistic-lock merge patch: a concurrent edit of the webhook list
	// makes it fail and retry rather than overwrite the edit.
	if err := r.Client.Patch(ctx, &mwc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return reconcile.Result{}, fmt.Errorf("patch caBundle of %s: %w", r.Name, err)
	}
	r.Logger.Info("webhook caBundle updated", "configuration", r.Name, "webhooks", changed)
	return reconcile.Result{}, nil
}
