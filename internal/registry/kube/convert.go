package kube

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
)

// podOwnerPrefix starts a registry.Provider.Owner that names a Pod.
const podOwnerPrefix = "pod:"

// PodOwner returns the registry.Provider.Owner of a provider registered at
// run time by a Pod: "pod:<namespace>/<name>/<uid>". The kube store gives
// a provider with such an owner an ownerReference to the Pod, so that
// Kubernetes' garbage collector deletes it with the Pod.
func PodOwner(namespace, name string, uid types.UID) string {
	return podOwnerPrefix + namespace + "/" + name + "/" + string(uid)
}

// ParsePodOwner parses an owner written by PodOwner. ok is false for an
// owner that does not start with "pod:"; err is set for one that does but
// is malformed.
func ParsePodOwner(owner string) (namespace, name string, uid types.UID, ok bool, err error) {
	rest, found := strings.CutPrefix(owner, podOwnerPrefix)
	if !found {
		return "", "", "", false, nil
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", true, &registry.FieldError{Field: "owner", Value: owner, Reason: "is not a pod owner: write it as pod:<namespace>/<name>/<uid>"}
	}
	return parts[0], parts[1], types.UID(parts[2]), true, nil
}

// podOwnerReference returns the ownerReference of a Pod owner of provider
// p, or nil when p's owner is not a Pod.
func podOwnerReference(p *registry.Provider) (*metav1.OwnerReference, error) {
	ns, name, uid, ok, err := ParsePodOwner(p.Owner)
	if err != nil || !ok {
		return nil, err
	}
	if ns != p.Namespace {
		return nil, &registry.FieldError{Field: "owner", Value: p.Owner, Reason: fmt.Sprintf(
			"names a pod in namespace %s, but the provider is in namespace %s: Kubernetes owner references cannot cross namespaces, so register the provider in the pod's namespace", ns, p.Namespace)}
	}
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: name, UID: uid}, nil
}

// isPodRef reports whether r points at a Pod.
func isPodRef(r metav1.OwnerReference) bool {
	return r.Kind == "Pod" && r.APIVersion == "v1"
}

// Revision returns the store revision of an object: its resourceVersion as
// an integer. The API server's resourceVersions are etcd revisions, which
// are integers that grow with every write to the cluster; Kubernetes asks
// clients to treat them as opaque, and this store relies on etcd's
// behaviour instead (documented in doc.go).
func Revision(obj metav1.Object) (int64, error) {
	n, err := parseRevision(obj.GetResourceVersion())
	if err != nil {
		return 0, fmt.Errorf("%s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return n, nil
}

func parseRevision(rv string) (int64, error) {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("resourceVersion %q is not a positive integer: this store needs an API server backed by etcd", rv)
	}
	return n, nil
}

// FromObject converts a Provider object to the registry's model, without
// its inline secret material (the store reads that from its Secret). The
// endpoints are spec.endpoints, or status.endpoints when spec.serviceRef
// derives them. Owner comes from the ddi.dev/owner annotation, else from
// an ownerReference to a Pod.
func FromObject(obj *v1alpha1.Provider) (registry.Provider, error) {
	rev, err := Revision(obj)
	if err != nil {
		return registry.Provider{}, err
	}
	spec := &obj.Spec
	p := registry.Provider{
		Namespace: obj.Namespace,
		Name:      obj.Name,
		Type:      spec.Type,
		Version:   spec.Version,
		Labels:    fromLabels(spec.Labels),
		Config:    maps.Clone(spec.Config),
		Owner:     obj.Annotations[v1alpha1.AnnotationOwner],
		Revision:  rev,
	}
	if spec.ServiceRef != nil {
		for _, e := range obj.Status.Endpoints {
			p.Endpoints = append(p.Endpoints, registry.Endpoint{URL: e.URL, Ready: e.Ready})
		}
		if IsKnativeService(spec.ServiceRef) {
			fromKnative(&p, obj)
		}
	} else {
		for _, e := range spec.Endpoints {
			p.Endpoints = append(p.Endpoints, registry.Endpoint{URL: e.URL, Ready: e.Ready})
		}
	}
	if r := spec.SecretRef; r != nil {
		p.SecretRef = &registry.SecretRef{Name: r.Name, Keys: slices.Clone(r.Keys)}
	}
	if s := spec.Scope; s != nil {
		p.Scope = registry.Scope{
			Namespaces:      slices.Clone(s.Namespaces),
			ServiceAccounts: slices.Clone(s.ServiceAccounts),
			Workloads:       slices.Clone(s.Workloads),
			WorkloadLabels:  fromLabels(s.WorkloadLabels),
		}
	}
	if l := spec.Lease; l != nil {
		renewed := obj.CreationTimestamp.Time
		if l.RenewTime != nil {
			renewed = l.RenewTime.Time
		}
		p.Lease = &registry.Lease{TTL: registry.Duration(l.TTL.Duration), ExpiresAt: renewed.Add(l.TTL.Duration).UTC()}
	}
	if p.Owner == "" {
		for _, r := range obj.OwnerReferences {
			if isPodRef(r) {
				p.Owner = PodOwner(obj.Namespace, r.Name, r.UID)
				break
			}
		}
	}
	return p, nil
}

// Config keys a Provider on a Knative Service adds to its bindings, from
// its status, unless spec.config sets them.
const (
	// ConfigKnativeRevision is the revision that receives the largest
	// share of the Knative Service's traffic, whose version the binding
	// carries.
	ConfigKnativeRevision = "knative-revision"
	// ConfigKnativeTraffic is the Knative Service's split of traffic
	// between revisions ("80% greeter-00002 2.0.0, 20% greeter-00001
	// 1.0.0"), which Knative routes through the Service's address.
	ConfigKnativeTraffic = "knative-traffic"
)

// IsKnativeService reports whether a serviceRef names a Knative Service.
func IsKnativeService(ref *v1alpha1.ServiceReference) bool {
	return ref.Kind == "Service" && (ref.APIVersion == "serving.knative.dev/v1" || ref.APIVersion == "serving.knative.dev/v1beta1")
}

// fromKnative fills what a Provider on a Knative Service derives from its
// revisions, as the controller wrote them to its status: the version,
// when spec.version is empty, and the knative-revision and
// knative-traffic config entries, unless spec.config has them.
func fromKnative(p *registry.Provider, obj *v1alpha1.Provider) {
	st := &obj.Status
	if p.Version == "" {
		p.Version = st.Version
	}
	for k, v := range map[string]string{ConfigKnativeRevision: st.Revision, ConfigKnativeTraffic: st.KnativeTraffic} {
		if _, set := p.Config[k]; set || v == "" {
			continue
		}
		if p.Config == nil {
			p.Config = map[string]string{}
		}
		p.Config[k] = v
	}
}

// dropDerived removes from p, before it is written back to obj, what
// FromObject derived from obj's status, so that a read-modify-write
// through the store does not turn it into spec: the version, and the
// knative-* config entries, while they equal the status.
func dropDerived(p *registry.Provider, obj *v1alpha1.Provider) registry.Provider {
	ref := obj.Spec.ServiceRef
	if ref == nil || !IsKnativeService(ref) {
		return *p
	}
	q := *p
	st := &obj.Status
	if obj.Spec.Version == "" && q.Version == st.Version {
		q.Version = ""
	}
	for k, v := range map[string]string{ConfigKnativeRevision: st.Revision, ConfigKnativeTraffic: st.KnativeTraffic} {
		if _, own := obj.Spec.Config[k]; !own && v != "" && q.Config[k] == v {
			q.Config = maps.Clone(q.Config)
			delete(q.Config, k)
		}
	}
	return q
}

// applyProvider writes provider p onto obj, which is a new object or the
// stored one: the spec is replaced, metadata that others own (their
// labels, annotations, finalizers, owner references) is kept. A stored
// Provider whose endpoints come from spec.serviceRef keeps its serviceRef,
// and p.Endpoints are ignored: the controller derives them. now is the
// lease's renew time.
func applyProvider(obj *v1alpha1.Provider, p *registry.Provider, now time.Time) error {
	owner, err := podOwnerReference(p)
	if err != nil {
		return err
	}
	obj.Namespace, obj.Name = p.Namespace, p.Name
	markWritten(obj, now)
	q := dropDerived(p, obj)
	p = &q

	if p.Owner != "" {
		setAnnotation(obj, v1alpha1.AnnotationOwner, p.Owner)
	} else {
		delete(obj.Annotations, v1alpha1.AnnotationOwner)
	}
	refs := slices.DeleteFunc(slices.Clone(obj.OwnerReferences), isPodRef)
	if owner != nil {
		refs = append(refs, *owner)
	}
	obj.OwnerReferences = refs

	old := obj.Spec
	spec := v1alpha1.ProviderSpec{
		Type:    p.Type,
		Version: p.Version,
		Labels:  toLabels(p.Labels),
		Config:  nilMap(maps.Clone(p.Config)),
	}
	if old.ServiceRef != nil {
		spec.ServiceRef = old.ServiceRef.DeepCopy()
	} else {
		for _, e := range p.Endpoints {
			spec.Endpoints = append(spec.Endpoints, v1alpha1.Endpoint{URL: e.URL, Ready: e.Ready})
		}
	}
	if r := p.SecretRef; r != nil {
		spec.SecretRef = &v1alpha1.SecretReference{Name: r.Name, Keys: nilSlice(slices.Clone(r.Keys))}
	}
	if s := p.Scope; len(s.Namespaces)+len(s.ServiceAccounts)+len(s.Workloads)+len(s.WorkloadLabels) > 0 {
		spec.Scope = &v1alpha1.Scope{
			Namespaces:      nilSlice(slices.Clone(s.Namespaces)),
			ServiceAccounts: nilSlice(slices.Clone(s.ServiceAccounts)),
			Workloads:       nilSlice(slices.Clone(s.Workloads)),
			WorkloadLabels:  toLabels(s.WorkloadLabels),
		}
	}
	if l := p.Lease; l != nil {
		t := metav1.NewMicroTime(now)
		spec.Lease = &v1alpha1.Lease{TTL: metav1.Duration{Duration: time.Duration(l.TTL)}, RenewTime: &t}
	}
	obj.Spec = spec
	return nil
}

// markWritten sets the ddi.dev/written annotation to now, or to just
// after its current value if the clock has not moved past it, so that the
// write changes the object.
func markWritten(obj metav1.Object, now time.Time) {
	if prev, err := time.Parse(time.RFC3339Nano, obj.GetAnnotations()[v1alpha1.AnnotationWritten]); err == nil && !now.After(prev) {
		now = prev.Add(time.Nanosecond)
	}
	setAnnotation(obj, v1alpha1.AnnotationWritten, now.UTC().Format(time.RFC3339Nano))
}

func setAnnotation(obj metav1.Object, key, value string) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[key] = value
	obj.SetAnnotations(a)
}

// nilMap and nilSlice return nil for an empty map or slice, so that an
// omitted field stays omitted.
func nilMap[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return m
}

func nilSlice[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

// fromLabels and toLabels convert label maps between the API's and the
// registry's types; empty maps become nil.
func fromLabels(m map[string]v1alpha1.LabelValue) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func toLabels(m map[string]string) map[string]v1alpha1.LabelValue {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]v1alpha1.LabelValue, len(m))
	for k, v := range m {
		out[k] = v1alpha1.LabelValue(v)
	}
	return out
}

// secretData converts a Secret's data to the registry's string map.
func secretData(s *corev1.Secret) map[string]string {
	out := make(map[string]string, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// Dependencies converts the dependencies of a DependencySet to the
// registry's model. A reference to a provider without a namespace means
// the DependencySet's namespace, as in the selector syntax; an empty
// version range means any release.
func Dependencies(ds *v1alpha1.DependencySet) ([]registry.Dependency, error) {
	deps := make([]registry.Dependency, 0, len(ds.Spec.Dependencies))
	for i, d := range ds.Spec.Dependencies {
		dep, err := Dependency(d)
		if err != nil {
			return nil, fmt.Errorf("spec.dependencies[%d] (alias %q): %w", i, d.Alias, err)
		}
		deps = append(deps, dep)
	}
	return deps, nil
}

// Dependency converts one dependency of a DependencySet: a provider
// reference, a selector, or a weighted split (targets), checked by the
// rules of registry.NewSplit; an error names the target's field.
func Dependency(d v1alpha1.Dependency) (registry.Dependency, error) {
	if d.Targets == nil {
		sel, err := DependencySelector(d)
		if err != nil {
			return registry.Dependency{}, err
		}
		return registry.Dependency{Alias: d.Alias, Selector: sel}, nil
	}
	if d.Provider != nil || d.Selector != nil {
		return registry.Dependency{}, fmt.Errorf("set targets alone, without provider or selector")
	}
	targets := make([]registry.Target, len(d.Targets))
	for j, t := range d.Targets {
		sel, err := DependencySelector(v1alpha1.Dependency{Provider: t.Provider, Selector: t.Selector})
		if err != nil {
			return registry.Dependency{}, fmt.Errorf("targets[%d]: %w", j, err)
		}
		targets[j] = registry.Target{Selector: sel, Weight: int(t.Weight)}
	}
	dep, err := registry.NewSplit(d.Alias, targets)
	var se *registry.SplitError
	if errors.As(err, &se) {
		if se.Index < 0 {
			return registry.Dependency{}, fmt.Errorf("targets: %s", se.Reason)
		}
		field := se.Field
		if field == "selector" {
			field = "provider or selector"
		}
		return registry.Dependency{}, fmt.Errorf("targets[%d].%s: %s", se.Index, field, se.Reason)
	}
	return dep, err
}

// DependencySelector converts one dependency's provider reference or
// selector to a registry.Selector.
func DependencySelector(d v1alpha1.Dependency) (registry.Selector, error) {
	switch {
	case d.Provider != nil && d.Selector != nil:
		return registry.Selector{}, fmt.Errorf("set provider or selector, not both")
	case d.Provider != nil:
		return registry.Selector{Namespace: d.Provider.Namespace, Provider: d.Provider.Name}, nil
	case d.Selector != nil:
		r, err := registry.ParseRange(d.Selector.Version)
		if err != nil {
			return registry.Selector{}, fmt.Errorf("selector.version: %w", err)
		}
		return registry.Selector{
			Namespace: d.Selector.Namespace,
			Type:      registry.CanonicalType(d.Selector.Type),
			Range:     r,
			Labels:    fromLabels(d.Selector.Labels),
		}, nil
	}
	return registry.Selector{}, fmt.Errorf("set provider (a provider by name) or selector (a type, version range and labels)")
}
