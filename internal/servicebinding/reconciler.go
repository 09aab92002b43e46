package servicebinding

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	sbv1 "ddi.dev/ddi/api/servicebinding/v1"
)

// Finalizer keeps a ServiceBinding until its projection is removed from
// every workload.
const Finalizer = "servicebinding.ddi.dev/finalizer"

// secretRetry is how soon a binding whose Secret does not exist yet is
// tried again (Secrets are read one at a time, never watched), and one
// that names a kind the API server does not serve yet.
const secretRetry = 5 * time.Second

// conflictRetry is how soon a reconcile that lost a write race (a
// workload or the ServiceBinding changed under it) runs again.
const conflictRetry = 200 * time.Millisecond

// EventRecorder records Events about an object.
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Reconciler projects ServiceBindings into workloads.
type Reconciler struct {
	// Client reads ServiceBindings and ClusterWorkloadResourceMappings
	// from the manager's cache, and services, Secrets and workloads from
	// the API server.
	Client client.Client
	// Mapper finds a kind's resource name (a mapping's name).
	Mapper meta.RESTMapper
	Events EventRecorder
	Logger *slog.Logger

	watch   func(gvk schema.GroupVersionKind) error
	mu      sync.Mutex
	watched map[schema.GroupVersionKind]bool
}

// SetupWithManager registers the reconciler with mgr. Besides
// ServiceBindings and mappings it watches, from the first binding that
// names them, each service kind and workload kind (metadata only), so that
// a workload created or relabelled later, or a service whose binding
// Secret changes name, is reconciled.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Mapper == nil {
		r.Mapper = mgr.GetRESTMapper()
	}
	c, err := ctrl.NewControllerManagedBy(mgr).
		Named("servicebinding").
		For(&sbv1.ServiceBinding{}).
		Watches(&sbv1.ClusterWorkloadResourceMapping{}, handler.EnqueueRequestsFromMapFunc(r.all)).
		Build(r)
	if err != nil {
		return err
	}
	r.watched = map[schema.GroupVersionKind]bool{}
	r.watch = func(gvk schema.GroupVersionKind) error {
		var obj client.Object = metaOnly(gvk)
		return c.Watch(source.Kind(mgr.GetCache(), obj, handler.EnqueueRequestsFromMapFunc(r.naming(gvk))))
	}
	return nil
}

func metaOnly(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(gvk)
	return o
}

// ensureWatch starts the watch of gvk once.
func (r *Reconciler) ensureWatch(gvk schema.GroupVersionKind) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watch == nil || r.watched[gvk] {
		return nil
	}
	if err := r.watch(gvk); err != nil {
		return fmt.Errorf("watch %s: %w", gvk, err)
	}
	r.watched[gvk] = true
	return nil
}

// all enqueues every ServiceBinding.
func (r *Reconciler) all(ctx context.Context, _ client.Object) []reconcile.Request {
	var list sbv1.ServiceBindingList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return out
}

// naming enqueues the ServiceBindings in an object's namespace whose
// service or workload is of kind gvk.
func (r *Reconciler) naming(gvk schema.GroupVersionKind) handler.MapFunc {
	apiVersion, kind := gvk.ToAPIVersionAndKind()
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var list sbv1.ServiceBindingList
		if err := r.Client.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil
		}
		var out []reconcile.Request
		for i := range list.Items {
			s := &list.Items[i].Spec
			if (s.Service.APIVersion == apiVersion && s.Service.Kind == kind) || (s.Workload.APIVersion == apiVersion && s.Workload.Kind == kind) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return out
	}
}

// failure is bad input or a missing object: the Ready condition's reason
// and message. Nothing is projected while a binding fails.
type failure struct {
	reason, message string
	retry           time.Duration
}

func (f *failure) Error() string { return f.message }

func fail(reason, format string, args ...any) *failure {
	return &failure{reason: reason, message: fmt.Sprintf(format, args...)}
}

// Reconcile projects one ServiceBinding, or removes its projection when it
// is being deleted.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var sb sbv1.ServiceBinding
	if err := r.Client.Get(ctx, req.NamespacedName, &sb); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !sb.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, r.finalize(ctx, &sb)
	}
	if controllerutil.AddFinalizer(&sb, Finalizer) {
		if err := r.Client.Update(ctx, &sb); err != nil {
			return reconcile.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}
	n, secret, err := r.bind(ctx, &sb)
	res, err := r.report(ctx, &sb, n, secret, err)
	if apierrors.IsConflict(err) {
		// A newer version of an object is on its way through the watch;
		// try again soon, quietly.
		return reconcile.Result{RequeueAfter: conflictRetry}, nil
	}
	return res, err
}

// report records the outcome of bind in sb's status: Ready, and
// ServiceAvailable (whether the service's binding Secret was found). A
// conflict writing a workload is retried, not reported.
func (r *Reconciler) report(ctx context.Context, sb *sbv1.ServiceBinding, n, secret string, err error) (reconcile.Result, error) {
	if apierrors.IsConflict(err) {
		return reconcile.Result{}, err
	}
	avail := metav1.Condition{Type: sbv1.ConditionServiceAvailable, Status: metav1.ConditionTrue, Reason: sbv1.ReasonServiceAvailable, Message: "Secret " + secret}
	var f *failure
	isFailure := errors.As(err, &f)
	if secret == "" {
		avail.Status, avail.Reason, avail.Message = metav1.ConditionUnknown, sbv1.ReasonProjectionFailed, "the service was not resolved"
		if isFailure {
			avail.Status, avail.Reason, avail.Message = metav1.ConditionFalse, f.reason, f.message
		}
	}
	switch {
	case isFailure:
		return reconcile.Result{RequeueAfter: f.retry}, r.setStatus(ctx, sb, "", avail, metav1.ConditionFalse, f.reason, f.message)
	case err != nil:
		if serr := r.setStatus(ctx, sb, "", avail, metav1.ConditionFalse, sbv1.ReasonProjectionFailed, err.Error()); serr != nil {
			r.Logger.Warn("update ServiceBinding status", "namespace", sb.Namespace, "name", sb.Name, "err", serr)
		}
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, r.setStatus(ctx, sb, secret, avail, metav1.ConditionTrue, sbv1.ReasonProjected, n)
}

// bind resolves sb and projects it into every workload it selects, and
// out of those it selected before and selects no more. It returns the
// Ready message and the binding Secret's name.
func (r *Reconciler) bind(ctx context.Context, sb *sbv1.ServiceBinding) (string, string, error) {
	wgvk, err := gvkOf("spec.workload", sb.Spec.Workload.APIVersion, sb.Spec.Workload.Kind)
	if err != nil {
		return "", "", err
	}
	secret, err := r.resolveSecret(ctx, sb)
	if err != nil {
		return "", "", err
	}
	m, err := r.mappingOf(ctx, wgvk)
	if err != nil {
		return "", secret, err
	}
	if err := r.ensureWatch(wgvk); err != nil {
		return "", secret, err
	}
	selected, err := r.selected(ctx, sb, wgvk)
	if err != nil {
		return "", secret, err
	}
	b := binding{
		uid: string(sb.UID), name: sb.Spec.Name, secret: secret,
		typ: sb.Spec.Type, provider: sb.Spec.Provider,
		env: sb.Spec.Env, containers: sb.Spec.Workload.Containers,
	}
	if b.name == "" {
		b.name = sb.Name
	}
	// Every change is computed before any is written: bad input leaves
	// every workload as it was.
	var changed []*unstructured.Unstructured
	names := map[string]bool{}
	for _, w := range selected {
		names[w.GetName()] = true
		next := w.DeepCopy()
		// A projection made through another mapping is removed through
		// it first (Workload Resource Mapping, Runtime Behavior).
		if old, ok := recordedMapping(next, b.uid); ok && !equality.Semantic.DeepEqual(old.template, m.template) {
			if err := unproject(next, old, b.uid); err != nil {
				return "", secret, &failure{reason: sbv1.ReasonInvalidMapping, message: err.Error()}
			}
		}
		if err := project(next, m, b); err != nil {
			return "", secret, &failure{reason: sbv1.ReasonInvalidMapping, message: err.Error()}
		}
		if !equality.Semantic.DeepEqual(w.Object, next.Object) {
			changed = append(changed, next)
		}
	}
	stale, err := r.projectedInto(ctx, sb, wgvk)
	if err != nil {
		return "", secret, err
	}
	for _, w := range stale {
		if names[w.GetName()] {
			continue
		}
		next := w.DeepCopy()
		if err := unproject(next, projectedWith(next, b.uid, m), b.uid); err != nil {
			return "", secret, &failure{reason: sbv1.ReasonInvalidMapping, message: err.Error()}
		}
		changed = append(changed, next)
	}
	for _, w := range changed {
		if err := r.Client.Update(ctx, w); err != nil {
			return "", secret, fmt.Errorf("update %s %s: %w", w.GetKind(), w.GetName(), err)
		}
	}
	if len(selected) == 0 {
		return fmt.Sprintf("no %s matches spec.workload.selector yet", sb.Spec.Workload.Kind), secret, nil
	}
	list := slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	})
	return fmt.Sprintf("Secret %s projected into %s %s", secret, sb.Spec.Workload.Kind, strings.Join(list, ", ")), secret, nil
}

// projectedWith is the mapping to remove uid's projection from obj with:
// the one it was made with, else m.
func projectedWith(obj *unstructured.Unstructured, uid string, m mapping) mapping {
	if old, ok := recordedMapping(obj, uid); ok {
		return old
	}
	return m
}

func gvkOf(field, apiVersion, kind string) (schema.GroupVersionKind, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionKind{}, fail(sbv1.ReasonInvalidSpec, "%s.apiVersion %q: %v: use group/version, such as apps/v1", field, apiVersion, err)
	}
	return gv.WithKind(kind), nil
}

// resolveSecret returns the name of the binding Secret: the service itself
// when it is a Secret, else the service's .status.binding.name. The Secret
// must exist.
func (r *Reconciler) resolveSecret(ctx context.Context, sb *sbv1.ServiceBinding) (string, error) {
	s := sb.Spec.Service
	gvk, err := gvkOf("spec.service", s.APIVersion, s.Kind)
	if err != nil {
		return "", err
	}
	name := s.Name
	if gvk != corev1.SchemeGroupVersion.WithKind("Secret") {
		svc := &unstructured.Unstructured{}
		svc.SetGroupVersionKind(gvk)
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: sb.Namespace, Name: s.Name}, svc)
		if err == nil || apierrors.IsNotFound(err) {
			// The kind is served: follow its objects.
			if werr := r.ensureWatch(gvk); werr != nil {
				return "", werr
			}
		}
		switch {
		case meta.IsNoMatchError(err):
			f := fail(sbv1.ReasonServiceNotFound, "spec.service: the API server serves no kind %s in %s: install its CRD, or correct spec.service.apiVersion and kind", s.Kind, s.APIVersion)
			f.retry = secretRetry
			return "", f
		case apierrors.IsNotFound(err):
			return "", fail(sbv1.ReasonServiceNotFound, "spec.service.name: %s %s does not exist in namespace %s: create it, or correct spec.service", s.Kind, s.Name, sb.Namespace)
		case err != nil:
			return "", fmt.Errorf("get %s %s: %w", s.Kind, s.Name, err)
		}
		name, _, _ = unstructured.NestedString(svc.Object, "status", "binding", "name")
		if name == "" {
			return "", fail(sbv1.ReasonServiceNotProvisioned, "spec.service: %s %s has no .status.binding.name: it is not a Provisioned Service, or has not provisioned its binding Secret yet", s.Kind, s.Name)
		}
	}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: sb.Namespace, Name: name}, &corev1.Secret{})
	switch {
	case apierrors.IsNotFound(err):
		field := "spec.service.name"
		if gvk != corev1.SchemeGroupVersion.WithKind("Secret") {
			field = "spec.service (its .status.binding.name)"
		}
		f := fail(sbv1.ReasonSecretNotFound, "%s: Secret %s does not exist in namespace %s yet: create it", field, name, sb.Namespace)
		f.retry = secretRetry
		return "", f
	case err != nil:
		return "", fmt.Errorf("get Secret %s: %w", name, err)
	}
	return name, nil
}

// mappingOf returns the mapping of a workload kind: its
// ClusterWorkloadResourceMapping, named <resource>.<group>, or the
// PodSpec-able default.
func (r *Reconciler) mappingOf(ctx context.Context, gvk schema.GroupVersionKind) (mapping, error) {
	rm, err := r.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		f := fail(sbv1.ReasonWorkloadNotFound, "spec.workload: the API server serves no kind %s in %s: install its CRD, or correct spec.workload.apiVersion and kind", gvk.Kind, gvk.GroupVersion())
		f.retry = secretRetry
		return mapping{}, f
	}
	if err != nil {
		return mapping{}, fmt.Errorf("map %s: %w", gvk, err)
	}
	name := rm.Resource.GroupResource().String()
	var cwrm sbv1.ClusterWorkloadResourceMapping
	err = r.Client.Get(ctx, client.ObjectKey{Name: name}, &cwrm)
	if apierrors.IsNotFound(err) {
		m := podSpecable()
		m.source = fmt.Sprintf("the default mapping of %s (no ClusterWorkloadResourceMapping %s)", gvk.Kind, name)
		return m, nil
	}
	if err != nil {
		return mapping{}, fmt.Errorf("get ClusterWorkloadResourceMapping %s: %w", name, err)
	}
	m, err := mappingFor(&cwrm, gvk.Version)
	if err != nil {
		return mapping{}, &failure{reason: sbv1.ReasonInvalidMapping, message: err.Error()}
	}
	return m, nil
}

// selected returns the workloads sb selects, by name or label selector.
func (r *Reconciler) selected(ctx context.Context, sb *sbv1.ServiceBinding, gvk schema.GroupVersionKind) ([]*unstructured.Unstructured, error) {
	w := sb.Spec.Workload
	if w.Name != "" {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: sb.Namespace, Name: w.Name}, u)
		if apierrors.IsNotFound(err) {
			return nil, fail(sbv1.ReasonWorkloadNotFound, "spec.workload.name: %s %s does not exist in namespace %s: create it, or correct spec.workload", w.Kind, w.Name, sb.Namespace)
		}
		if err != nil {
			return nil, fmt.Errorf("get %s %s: %w", w.Kind, w.Name, err)
		}
		return []*unstructured.Unstructured{u}, nil
	}
	if w.Selector == nil {
		return nil, fail(sbv1.ReasonInvalidSpec, "spec.workload: set name or selector")
	}
	sel, err := metav1.LabelSelectorAsSelector(w.Selector)
	if err != nil {
		return nil, fail(sbv1.ReasonInvalidSpec, "spec.workload.selector: %v", err)
	}
	return r.list(ctx, sb.Namespace, gvk, sel)
}

// projectedInto returns the workloads of the kind that carry sb's
// projection record.
func (r *Reconciler) projectedInto(ctx context.Context, sb *sbv1.ServiceBinding, gvk schema.GroupVersionKind) ([]*unstructured.Unstructured, error) {
	all, err := r.list(ctx, sb.Namespace, gvk, labels.Everything())
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(u *unstructured.Unstructured) bool {
		return !slices.Contains(projected(u), string(sb.UID))
	}), nil
}

func (r *Reconciler) list(ctx context.Context, namespace string, gvk schema.GroupVersionKind, sel labels.Selector) ([]*unstructured.Unstructured, error) {
	var list unstructured.UnstructuredList
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := r.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("list %s: %w", gvk.Kind, err)
	}
	out := make([]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, nil
}

// finalize removes sb's projection from every workload of its kind, then
// its finalizer.
func (r *Reconciler) finalize(ctx context.Context, sb *sbv1.ServiceBinding) error {
	if !controllerutil.ContainsFinalizer(sb, Finalizer) {
		return nil
	}
	gvk, err := gvkOf("spec.workload", sb.Spec.Workload.APIVersion, sb.Spec.Workload.Kind)
	if err == nil {
		if err := r.unbindAll(ctx, sb, gvk); err != nil {
			return err
		}
	}
	controllerutil.RemoveFinalizer(sb, Finalizer)
	if err := r.Client.Update(ctx, sb); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

func (r *Reconciler) unbindAll(ctx context.Context, sb *sbv1.ServiceBinding, gvk schema.GroupVersionKind) error {
	m, err := r.mappingOf(ctx, gvk)
	var f *failure
	if errors.As(err, &f) && f.reason == sbv1.ReasonWorkloadNotFound {
		return nil // the kind is gone, and its workloads with it
	}
	if err != nil {
		// An invalid mapping cannot say where the projection is: the
		// finalizer stays until the mapping is fixed.
		r.event(sb, corev1.EventTypeWarning, f.reasonOr(sbv1.ReasonProjectionFailed), "cannot remove the projection: %v", err)
		return err
	}
	ws, err := r.projectedInto(ctx, sb, gvk)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if err := unproject(w, projectedWith(w, string(sb.UID), m), string(sb.UID)); err != nil {
			return err
		}
		if err := r.Client.Update(ctx, w); err != nil {
			return fmt.Errorf("update %s %s: %w", w.GetKind(), w.GetName(), err)
		}
	}
	return nil
}

func (f *failure) reasonOr(def string) string {
	if f == nil {
		return def
	}
	return f.reason
}

// setStatus records the Ready and ServiceAvailable conditions,
// observedGeneration and, when secret is set, status.binding; an Event
// marks a change of the Ready condition.
func (r *Reconciler) setStatus(ctx context.Context, sb *sbv1.ServiceBinding, secret string, avail metav1.Condition, status metav1.ConditionStatus, reason, message string) error {
	before := sb.Status.DeepCopy()
	prev := meta.FindStatusCondition(sb.Status.Conditions, sbv1.ConditionReady)
	meta.SetStatusCondition(&sb.Status.Conditions, metav1.Condition{
		Type: sbv1.ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: sb.Generation,
	})
	avail.ObservedGeneration = sb.Generation
	meta.SetStatusCondition(&sb.Status.Conditions, avail)
	sb.Status.ObservedGeneration = sb.Generation
	if secret != "" {
		sb.Status.Binding = &sbv1.ServiceBindingSecretReference{Name: secret}
	}
	if equality.Semantic.DeepEqual(before, &sb.Status) {
		return nil
	}
	if prev == nil || prev.Status != status || prev.Reason != reason || prev.Message != message {
		typ := corev1.EventTypeNormal
		if status != metav1.ConditionTrue {
			typ = corev1.EventTypeWarning
		}
		r.event(sb, typ, reason, "%s", message)
	}
	if err := r.Client.Status().Update(ctx, sb); err != nil {
		return fmt.Errorf("update ServiceBinding status: %w", err)
	}
	return nil
}

func (r *Reconciler) event(sb *sbv1.ServiceBinding, typ, reason, format string, args ...any) {
	if r.Events != nil {
		r.Events.Eventf(sb, nil, typ, reason, "Reconcile", format, args...)
	}
}
