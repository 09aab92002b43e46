package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/podauth"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/kube"
	"ddi.dev/ddi/internal/webhook"
)

// DependencySetReconciler reports, per dependency of a DependencySet, the
// provider it resolves to for a workload of its namespace, or why it does
// not. (Ending the streams of the sidecars a changed DependencySet
// selects is followDependencySets' job, on every replica.)
type DependencySetReconciler struct {
	Client client.Client
	Events webhook.EventRecorder
	Logger *slog.Logger
}

// SetupWithManager registers the reconciler with mgr. Every Provider change
// re-resolves the DependencySets (resolution may cross namespaces).
func (r *DependencySetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("dependencyset").
		For(&v1alpha1.DependencySet{}).
		Watches(&v1alpha1.Provider{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
			var list v1alpha1.DependencySetList
			if err := r.Client.List(ctx, &list); err != nil {
				return nil
			}
			out := make([]reconcile.Request, len(list.Items))
			for i := range list.Items {
				out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
			}
			return out
		})).
		Complete(r)
}

// Reconcile resolves one DependencySet.
func (r *DependencySetReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var ds v1alpha1.DependencySet
	if err := r.Client.Get(ctx, req.NamespacedName, &ds); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: every replica's follower has ended its sidecars'
			// streams (followDependencySets).
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	var plist v1alpha1.ProviderList
	if err := r.Client.List(ctx, &plist); err != nil {
		return reconcile.Result{}, err
	}
	providers := make([]*registry.Provider, 0, len(plist.Items))
	for i := range plist.Items {
		p, err := kube.FromObject(&plist.Items[i])
		if err != nil {
			continue
		}
		providers = append(providers, &p)
	}
	before := meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.ConditionReady)
	status := dependencySetStatus(&ds, providers, metav1.Now())
	cond := *meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
	if equality.Semantic.DeepEqual(&status, &ds.Status) {
		return reconcile.Result{}, nil
	}
	orig := ds.DeepCopy()
	ds.Status = status
	if err := r.Client.Status().Patch(ctx, &ds, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return reconcile.Result{Requeue: true}, nil
		}
		return reconcile.Result{}, fmt.Errorf("update status of dependency set %s: %w", req, err)
	}
	if r.Events != nil && (before == nil || before.Status != cond.Status || before.Reason != cond.Reason) {
		typ := "Normal"
		if cond.Status != metav1.ConditionTrue {
			typ = "Warning"
		}
		r.Events.Eventf(&ds, nil, typ, cond.Reason, "Resolve", "%s", cond.Message)
	}
	return reconcile.Result{}, nil
}

// dependencySetStatus computes the status of ds from the providers: per
// dependency, the provider it resolves to for a workload the DependencySet
// selects, or why it does not; the counts; and the Ready condition. now is
// the Ready condition's transition time when its status changes. It reads
// nothing else and changes nothing: the conditions of ds other than Ready
// are kept.
func dependencySetStatus(ds *v1alpha1.DependencySet, providers []*registry.Provider, now metav1.Time) v1alpha1.DependencySetStatus {
	_, selErr := metav1.LabelSelectorAsSelector(&ds.Spec.Selector)
	// Resolve for a typical selected pod: the selector's labels, and the
	// workload name they imply by podauth's rule (empty when they imply
	// none, so a scope by workload name may refuse it here and still admit
	// the actual pods).
	typical := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace, Labels: ds.Spec.Selector.MatchLabels}}
	consumer := registry.Consumer{Namespace: ds.Namespace, Labels: ds.Spec.Selector.MatchLabels, Name: podauth.WorkloadName(typical)}

	status := *ds.Status.DeepCopy()
	status.Dependencies = nil
	status.DependencyCount = int32(len(ds.Spec.Dependencies))
	status.ResolvedCount = 0
	for _, d := range ds.Spec.Dependencies {
		st := v1alpha1.DependencyStatus{Alias: d.Alias}
		sel, err := kube.DependencySelector(d)
		if err != nil {
			st.Reason, st.Message = "InvalidSelector", err.Error()
			status.Dependencies = append(status.Dependencies, st)
			continue
		}
		dep := registry.Dependency{Alias: d.Alias, Selector: sel}
		p, err := registry.Resolve(consumer, dep, candidates(providers, sel, ds.Namespace))
		if err != nil {
			st.Reason, st.Message = resolveReason(err), err.Error()
		} else {
			st.Provider, st.Version = p.Key(), p.Version
			status.ResolvedCount++
		}
		status.Dependencies = append(status.Dependencies, st)
	}
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, ObservedGeneration: ds.Generation, LastTransitionTime: now}
	switch {
	case selErr != nil:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "InvalidSelector", "spec.selector: "+selErr.Error()
	case status.ResolvedCount == status.DependencyCount:
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonResolved
		cond.Message = fmt.Sprintf("all %d dependencies resolved", status.DependencyCount)
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonUnresolved
		cond.Message = fmt.Sprintf("%d of %d dependencies unresolved", status.DependencyCount-status.ResolvedCount, status.DependencyCount)
	}
	status.ObservedGeneration = ds.Generation
	meta.SetStatusCondition(&status.Conditions, cond)
	return status
}

// candidates are the providers a selector can match.
func candidates(all []*registry.Provider, sel registry.Selector, ns string) []*registry.Provider {
	var out []*registry.Provider
	for _, p := range all {
		if sel.Provider != "" {
			want := sel.Namespace
			if want == "" {
				want = ns
			}
			if p.Name == sel.Provider && p.Namespace == want {
				out = append(out, p)
			}
		} else if p.Type == sel.Type {
			out = append(out, p)
		}
	}
	return out
}

// resolveReason maps a resolution failure to the status reason words.
func resolveReason(err error) string {
	var re *registry.ResolveError
	if !errors.As(err, &re) {
		return "NoMatch"
	}
	switch {
	case strings.Contains(re.Reason, "scope"):
		return "OutOfScope"
	case strings.Contains(re.Reason, "ready endpoint"):
		return "NotReady"
	}
	return "NoMatch"
}
