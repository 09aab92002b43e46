package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

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
	// An update, not a merge patch: a patch leaves out fields whose new
	// value is zero (readyEndpoints 0, consumers 0), which kubectl get
	// would then show as <none>. The resourceVersion makes it optimistic.
	if err := r.Client.Status().Update(ctx, &ds); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return reconcile.Result{Requeue: true}, nil
		}
		return reconcile.Result{}, fmt.Errorf("update status of dependency set %s: %w", req, err)
	}
	r.recordTransitions(&ds, before, &cond, orig.Status.Dependencies)
	return reconcile.Result{}, nil
}

// recordTransitions records Events for what changed in ds's status: the
// Ready condition's status or reason (Normal when it became True, Warning
// otherwise; an unresolved set's changed explanation too), and each
// dependency that moved from one provider to another (Normal, Rebound).
// Events are for people; the status is the record.
func (r *DependencySetReconciler) recordTransitions(ds *v1alpha1.DependencySet, before, cond *metav1.Condition, old []v1alpha1.DependencyStatus) {
	if r.Events == nil {
		return
	}
	if before == nil || before.Status != cond.Status || before.Reason != cond.Reason ||
		(cond.Status != metav1.ConditionTrue && before.Message != cond.Message) {
		typ := corev1.EventTypeNormal
		if cond.Status != metav1.ConditionTrue {
			typ = corev1.EventTypeWarning
		}
		r.Events.Eventf(ds, nil, typ, cond.Reason, "Resolve", "%s", cond.Message)
	}
	was := make(map[string]v1alpha1.DependencyStatus, len(old))
	for _, d := range old {
		was[d.Alias] = d
	}
	for _, d := range ds.Status.Dependencies {
		w := was[d.Alias]
		if d.Provider != "" && w.Provider != "" && d.Provider != w.Provider {
			r.Events.Eventf(ds, nil, corev1.EventTypeNormal, "Rebound", "Resolve",
				"%s now resolves to %s (was %s)", d.Alias, withVersion(d.Provider, d.Version), withVersion(w.Provider, w.Version))
		}
	}
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
	bound := make([]string, 0, len(ds.Spec.Dependencies))
	var unresolved []string
	for _, d := range ds.Spec.Dependencies {
		st := v1alpha1.DependencyStatus{Alias: d.Alias}
		dep, err := kube.Dependency(d)
		if err != nil {
			st.Reason, st.Message = "InvalidSelector", err.Error()
		} else {
			// Explain runs Resolve's own code and records every
			// candidate: the winner, or why each was rejected.
			ex := registry.ExplainDependency(consumer, dep, func(sel registry.Selector) []*registry.Provider {
				return candidates(providers, sel, ds.Namespace)
			})
			if ex.Chosen != "" {
				st.Provider = ex.Chosen
				for _, c := range ex.Candidates {
					if c.Chosen {
						st.Version = c.Version
					}
				}
				if len(ex.Split) > 0 {
					// A split: the primary's version, and every
					// target's share in the message.
					st.Message = splitText(&ex)
					for _, te := range ex.Split {
						for _, c := range te.Candidates {
							if te.Primary && c.Chosen {
								st.Version = c.Version
							}
						}
					}
				}
				status.ResolvedCount++
			} else {
				// Whoever reads the DependencySet sees only its own
				// namespace's providers and those exported to it.
				st.Reason = explainReason(&ex)
				ex.Visible(ds.Namespace)
				st.Message = explainText(&ex)
				if consumer.Name == "" {
					// No workload name follows from the selector: say
					// "consumer in shop", not "consumer shop/".
					st.Message = strings.ReplaceAll(st.Message, " consumer "+ds.Namespace+"/ ", " consumer in "+ds.Namespace+" ")
				}
			}
		}
		if st.Provider != "" {
			bound = append(bound, d.Alias+"="+st.Provider)
		} else {
			bound = append(bound, d.Alias+"=-")
			if st.Reason == "InvalidSelector" {
				unresolved = append(unresolved, d.Alias+": "+st.Message)
			} else {
				unresolved = append(unresolved, st.Message) // starts with the alias
			}
		}
		st.Message = truncate(st.Message, dependencyMessageMax)
		status.Dependencies = append(status.Dependencies, st)
	}
	status.Providers = truncate(strings.Join(bound, ","), providersMax)
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, ObservedGeneration: ds.Generation, LastTransitionTime: now}
	switch {
	case selErr != nil:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "InvalidSelector", "spec.selector: "+selErr.Error()
	case status.ResolvedCount == status.DependencyCount:
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonResolved
		cond.Message = fmt.Sprintf("all %d dependencies resolved", status.DependencyCount)
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonUnresolved
		cond.Message = truncate(fmt.Sprintf("%d of %d dependencies unresolved. %s", status.DependencyCount-status.ResolvedCount, status.DependencyCount,
			strings.Join(unresolved, " ")), conditionMessageMax)
	}
	status.ObservedGeneration = ds.Generation
	meta.SetStatusCondition(&status.Conditions, cond)
	return status
}

// Bounds of the texts in a DependencySet's status: the CRD's for a
// dependency's message and the providers summary, and one that keeps the
// Ready condition (and its Event, whose note the API server bounds at
// 1 KiB) readable in kubectl describe.
const (
	dependencyMessageMax = 1024
	providersMax         = 8192
	conditionMessageMax  = 1024
)

// truncate shortens s to at most max bytes, on a rune boundary, ending it
// with "..." when it cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// explainText is the explanation of an unresolved dependency in one
// paragraph, as kubectl describe shows it: why it did not resolve, then
// each candidate provider with the rule that rejected it, in resolution
// order.
func explainText(ex *registry.Explanation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s.", ex.Dependency, ex.Selector, strings.TrimSuffix(ex.Unresolved, "."))
	if len(ex.Candidates) > 0 {
		b.WriteString(" Candidates:")
		for i, c := range ex.Candidates {
			if i > 0 {
				b.WriteByte(';')
			}
			switch {
			case c.Admitted:
				fmt.Fprintf(&b, " %s admitted (%s)", c.Provider, c.Detail)
			default:
				fmt.Fprintf(&b, " %s rejected by %s (%s)", c.Provider, c.Rule, c.Detail)
			}
		}
		b.WriteByte('.')
	}
	if ex.Hidden > 0 {
		fmt.Fprintf(&b, " %d candidate(s) of other namespaces not shown (not exported to %s).", ex.Hidden, ex.Consumer.Namespace)
	}
	return b.String()
}

// splitText sums up a resolved split for its status message: each
// target's provider (or why it has none), declared weight and share.
func splitText(ex *registry.Explanation) string {
	parts := make([]string, len(ex.Split))
	for i, te := range ex.Split {
		who := te.Chosen
		if who == "" {
			who = te.Selector + " unresolved (" + strings.TrimSuffix(te.Unresolved, ".") + ")"
		}
		parts[i] = fmt.Sprintf("%s weight %d%% share %d%%", who, te.Weight, te.Share)
		if te.Primary {
			parts[i] += " (primary)"
		}
	}
	return "splits invocations: " + strings.Join(parts, ", ") + "."
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

// withVersion is "namespace/name version", or the key alone without a
// version.
func withVersion(key, version string) string {
	if version == "" {
		return key
	}
	return key + " " + version
}

// explainReason maps an unresolved explanation to the status reason
// words: NotReady when a candidate passed every rule but readiness,
// OutOfScope when one was refused by scope alone, NoMatch otherwise.
func explainReason(ex *registry.Explanation) string {
	reason := "NoMatch"
	for _, c := range ex.Candidates {
		switch c.Rule {
		case registry.RuleReadiness:
			return "NotReady"
		case registry.RuleScope:
			reason = "OutOfScope"
		}
	}
	return reason
}
