package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry/kube"
	"ddi.dev/ddi/internal/webhook"
)

// serviceRefIndex indexes Providers by the core Service their serviceRef
// names ("" for none or a Knative Service).
const serviceRefIndex = "spec.serviceRef.service"

// knativeRefIndex indexes Providers by the Knative Service their
// serviceRef names.
const knativeRefIndex = "spec.serviceRef.knativeService"

// revisionRetry is how soon a Provider is reconciled again when a Knative
// revision its Service routes to could not be read yet.
const revisionRetry = 5 * time.Second

// ProviderReconciler keeps Provider status true: for a Provider with a
// serviceRef, the endpoints come from the Service's EndpointSlices (one per
// ready address, so sidecars balance across pods) or from a Knative
// Service's status.address.url, with the version of the revision that
// receives most of its traffic; for one with spec.endpoints, status copies
// them. The Ready condition says whether any endpoint is ready and why
// not; observedGeneration says which spec it describes; consumers counts
// the DependencySet dependencies bound to it; an Event marks each change
// of Ready.
type ProviderReconciler struct {
	Client client.Client
	Events webhook.EventRecorder
	Logger *slog.Logger

	// ctrl and cache start the watch of Knative Services
	// (WatchKnativeServices) once SetupWithManager has built the
	// controller.
	ctrl  controller.Controller
	cache cache.Cache
}

// SetupWithManager registers the reconciler with mgr.
func (r *ProviderReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Provider{}, serviceRefIndex, func(o client.Object) []string {
		p := o.(*v1alpha1.Provider)
		if ref := p.Spec.ServiceRef; ref != nil && isCoreService(ref) {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Provider{}, knativeRefIndex, func(o client.Object) []string {
		p := o.(*v1alpha1.Provider)
		if ref := p.Spec.ServiceRef; ref != nil && isKnativeService(ref) {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	byService := func(ctx context.Context, ns, svc string) []reconcile.Request {
		return r.providersBy(ctx, serviceRefIndex, ns, svc)
	}
	c, err := ctrl.NewControllerManagedBy(mgr).
		Named("provider").
		For(&v1alpha1.Provider{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			svc := o.GetLabels()[discoveryv1.LabelServiceName]
			if svc == "" {
				return nil
			}
			return byService(ctx, o.GetNamespace(), svc)
		})).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return byService(ctx, o.GetNamespace(), o.GetName())
		})).
		// A DependencySet whose status binds or unbinds a provider
		// changes that provider's consumer count: enqueue the providers
		// its old and new status name.
		Watches(&v1alpha1.DependencySet{}, handler.Funcs{
			CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				enqueueBound(q, e.Object)
			},
			UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				enqueueBound(q, e.ObjectOld)
				enqueueBound(q, e.ObjectNew)
			},
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				enqueueBound(q, e.Object)
			},
		}).
		Build(r)
	if err != nil {
		return err
	}
	r.ctrl, r.cache = c, mgr.GetCache()
	return nil
}

// providersBy lists the Providers of namespace ns whose serviceRef names
// the Service svc, by index (serviceRefIndex or knativeRefIndex).
func (r *ProviderReconciler) providersBy(ctx context.Context, index, ns, svc string) []reconcile.Request {
	var list v1alpha1.ProviderList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{index: svc}); err != nil {
		r.Logger.Error("list providers by service", "service", ns+"/"+svc, "err", err)
		return nil
	}
	out := make([]reconcile.Request, len(list.Items))
	for i, p := range list.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)}
	}
	return out
}

// WatchKnativeServices makes the reconciler follow Knative Services: every
// change of one (its status included: a new ready revision, a new traffic
// split, a new address) reconciles the Providers whose serviceRef names
// it. The watch is of metadata only; the reconciler reads the Service
// itself. Call it once the API server serves serving.knative.dev/v1
// (knativeFollower does), after SetupWithManager.
func (r *ProviderReconciler) WatchKnativeServices() error {
	if r.ctrl == nil {
		return errors.New("the provider controller is not set up")
	}
	ksvc := &metav1.PartialObjectMetadata{}
	ksvc.SetGroupVersionKind(knativeServiceGVK)
	return r.ctrl.Watch(source.Kind[client.Object](r.cache, ksvc, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return r.providersBy(ctx, knativeRefIndex, o.GetNamespace(), o.GetName())
	})))
}

// enqueueBound adds to q the providers o's status says its dependencies
// resolved to.
func enqueueBound(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
	ds, ok := o.(*v1alpha1.DependencySet)
	if !ok {
		return
	}
	for _, d := range ds.Status.Dependencies {
		if ns, name, ok := strings.Cut(d.Provider, "/"); ok {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
		}
	}
}

// consumers counts the dependencies of DependencySets whose status says
// they resolved to the provider ns/name.
func (r *ProviderReconciler) consumers(ctx context.Context, ns, name string) (int32, error) {
	var list v1alpha1.DependencySetList
	if err := r.Client.List(ctx, &list); err != nil {
		return 0, fmt.Errorf("list dependency sets: %w", err)
	}
	key := ns + "/" + name
	n := int32(0)
	for i := range list.Items {
		for _, d := range list.Items[i].Status.Dependencies {
			if d.Provider == key {
				n++
			}
		}
	}
	return n, nil
}

func isCoreService(ref *v1alpha1.ServiceReference) bool {
	return (ref.APIVersion == "" || ref.APIVersion == "v1") && (ref.Kind == "" || ref.Kind == "Service")
}

func isKnativeService(ref *v1alpha1.ServiceReference) bool {
	return kube.IsKnativeService(ref)
}

// Reconcile brings one Provider's status up to date.
func (r *ProviderReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var p v1alpha1.Provider
	if err := r.Client.Get(ctx, req.NamespacedName, &p); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	status := p.Status.DeepCopy()
	var (
		eps     []v1alpha1.EndpointStatus
		revs    knativeRevisions
		reason  string
		message string
		requeue time.Duration
		err     error
	)
	switch ref := p.Spec.ServiceRef; {
	case ref == nil:
		for _, e := range p.Spec.Endpoints {
			eps = append(eps, v1alpha1.EndpointStatus{URL: e.URL, Ready: e.Ready})
		}
	case isCoreService(ref):
		eps, reason, message, err = r.serviceEndpoints(ctx, &p)
	case isKnativeService(ref):
		eps, revs, reason, message, err = r.knativeEndpoints(ctx, &p)
		if revs.unread {
			requeue = revisionRetry
		}
	default:
		reason, message = "UnsupportedServiceRef", fmt.Sprintf("serviceRef %s %s is neither a core Service (v1) nor a Knative Service (serving.knative.dev/v1)", ref.APIVersion, ref.Kind)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	ready := int32(0)
	for _, e := range eps {
		if e.Ready {
			ready++
		}
	}
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, ObservedGeneration: p.Generation}
	switch {
	case ready > 0:
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonEndpointsReady
		cond.Message = fmt.Sprintf("%d of %d endpoints ready", ready, len(eps))
		if len(revs.problems) > 0 {
			cond.Message += "; " + strings.Join(revs.problems, "; ")
		}
	case reason != "":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reason, message
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonNoReadyEndpoints
		cond.Message = fmt.Sprintf("none of %d endpoints is ready", len(eps))
	}
	// Always the resolved list, so that kubectl get -o wide shows the
	// ready URLs of every provider.
	status.Endpoints = eps
	status.ReadyEndpoints = ready
	status.Version = p.Spec.Version
	if status.Version == "" {
		status.Version = revs.version
	}
	status.Revision, status.Traffic, status.KnativeTraffic = revs.primary, revs.traffic, revs.line()
	if status.Consumers, err = r.consumers(ctx, p.Namespace, p.Name); err != nil {
		return reconcile.Result{}, err
	}
	status.ObservedGeneration = p.Generation
	before := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
	meta.SetStatusCondition(&status.Conditions, cond)
	if equality.Semantic.DeepEqual(status, &p.Status) {
		return reconcile.Result{RequeueAfter: requeue}, nil
	}
	p.Status = *status
	// An update, not a merge patch: a patch leaves out fields whose new
	// value is zero (readyEndpoints 0, consumers 0), which kubectl get
	// would then show as <none>. The resourceVersion makes it optimistic.
	if err := r.Client.Status().Update(ctx, &p); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return reconcile.Result{Requeue: true}, nil
		}
		return reconcile.Result{}, fmt.Errorf("update status of provider %s: %w", req, err)
	}
	if before == nil || before.Status != cond.Status || before.Reason != cond.Reason {
		typ := "Normal"
		if cond.Status != metav1.ConditionTrue {
			typ = "Warning"
		}
		if r.Events != nil {
			r.Events.Eventf(&p, nil, typ, cond.Reason, "Reconcile", "%s", cond.Message)
		}
		r.Logger.Info("provider readiness changed", "provider", req.String(), "ready", cond.Status, "reason", cond.Reason, "endpoints", len(eps))
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// serviceEndpoints derives endpoints from a core Service's EndpointSlices.
func (r *ProviderReconciler) serviceEndpoints(ctx context.Context, p *v1alpha1.Provider) ([]v1alpha1.EndpointStatus, string, string, error) {
	ref := p.Spec.ServiceRef
	var svc corev1.Service
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: ref.Name}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, v1alpha1.ReasonServiceNotFound, fmt.Sprintf("Service %s/%s does not exist", p.Namespace, ref.Name), nil
		}
		return nil, "", "", err
	}
	sp, msg := servicePort(&svc, ref.Port)
	if sp == nil {
		return nil, "PortNotFound", msg, nil
	}
	var slices_ discoveryv1.EndpointSliceList
	if err := r.Client.List(ctx, &slices_, client.InNamespace(p.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return nil, "", "", err
	}
	scheme := endpointScheme(p)
	seen := map[string]bool{}
	var eps []v1alpha1.EndpointStatus
	for _, s := range slices_.Items {
		port := slicePort(&s, sp)
		if port == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			for _, addr := range e.Addresses {
				u := scheme + "://" + net.JoinHostPort(addr, strconv.Itoa(int(port)))
				if seen[u] {
					continue
				}
				seen[u] = true
				eps = append(eps, v1alpha1.EndpointStatus{URL: u, Ready: ready})
			}
		}
	}
	slices.SortFunc(eps, func(a, b v1alpha1.EndpointStatus) int {
		switch {
		case a.URL < b.URL:
			return -1
		case a.URL > b.URL:
			return 1
		}
		return 0
	})
	if len(eps) > 64 {
		eps = eps[:64] // the registry's limit per provider
	}
	return eps, "", "", nil
}

// servicePort picks the Service port a serviceRef means: by number or
// name, or the only port.
func servicePort(svc *corev1.Service, want *intstr.IntOrString) (*corev1.ServicePort, string) {
	if want == nil {
		if len(svc.Spec.Ports) == 1 {
			return &svc.Spec.Ports[0], ""
		}
		return nil, fmt.Sprintf("Service %s has %d ports: name one in serviceRef.port", svc.Name, len(svc.Spec.Ports))
	}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if (want.Type == intstr.Int && sp.Port == want.IntVal) || (want.Type == intstr.String && sp.Name == want.StrVal) {
			return sp, ""
		}
	}
	return nil, fmt.Sprintf("Service %s has no port %s", svc.Name, want.String())
}

// slicePort is the endpoint port of an EndpointSlice for a Service port:
// slices name their ports after the Service's.
func slicePort(s *discoveryv1.EndpointSlice, sp *corev1.ServicePort) int32 {
	for _, p := range s.Ports {
		if p.Port != nil && ptrString(p.Name) == sp.Name {
			return *p.Port
		}
	}
	return 0
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// endpointScheme is the URL scheme of derived endpoints: serviceRef.scheme,
// else http for http and grpc providers, else the provider's type
// (postgresql://, redis://...).
func endpointScheme(p *v1alpha1.Provider) string {
	if s := p.Spec.ServiceRef.Scheme; s != "" {
		return s
	}
	switch p.Spec.Type {
	case "http", "grpc", "generic", "":
		return "http"
	}
	return p.Spec.Type
}

// knativeEndpoints reads a Knative Service's address and readiness, and
// the revisions its traffic goes to.
func (r *ProviderReconciler) knativeEndpoints(ctx context.Context, p *v1alpha1.Provider) ([]v1alpha1.EndpointStatus, knativeRevisions, string, string, error) {
	ref := p.Spec.ServiceRef
	ks := &unstructured.Unstructured{}
	ks.SetAPIVersion(ref.APIVersion)
	ks.SetKind("Service")
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: ref.Name}, ks); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return nil, knativeRevisions{}, v1alpha1.ReasonServiceNotFound, fmt.Sprintf("Knative Service %s/%s does not exist (or Knative Serving is not installed)", p.Namespace, ref.Name), nil
		}
		return nil, knativeRevisions{}, "", "", err
	}
	revs, err := r.revisions(ctx, p.Namespace, ks.Object)
	if err != nil {
		return nil, revs, "", "", err
	}
	url, _, _ := unstructured.NestedString(ks.Object, "status", "address", "url")
	if url == "" {
		return nil, revs, v1alpha1.ReasonNoReadyEndpoints, fmt.Sprintf("Knative Service %s/%s has no address yet", p.Namespace, ref.Name), nil
	}
	return []v1alpha1.EndpointStatus{{URL: url, Ready: knativeServing(ks.Object)}}, revs, "", "", nil
}

// knativeServing reports whether a Knative Service's address serves
// requests: a revision has been ready, and its route has not failed. The
// Service's Ready condition is no guide: it turns Unknown during every
// rollout of a new revision, and False when a new revision fails, while
// the route keeps sending traffic to the previous one; taking the
// provider away then would fail every consumer's calls for as long as the
// rollout lasts. Without a RoutesReady condition, Ready is used.
func knativeServing(ksvc map[string]any) bool {
	cond := map[string]string{}
	conds, _, _ := unstructured.NestedSlice(ksvc, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok {
			t, _ := m["type"].(string)
			st, _ := m["status"].(string)
			cond[t] = st
		}
	}
	if routes, ok := cond["RoutesReady"]; ok {
		latest, _, _ := unstructured.NestedString(ksvc, "status", "latestReadyRevisionName")
		return latest != "" && routes != "False"
	}
	return cond["Ready"] == "True"
}
