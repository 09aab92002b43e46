package kube

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/watchhub"
)

func TestDependencies(t *testing.T) {
	ds := &v1alpha1.DependencySet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "checkout"},
		Spec: v1alpha1.DependencySetSpec{Dependencies: []v1alpha1.Dependency{
			{Alias: "db", Selector: &v1alpha1.ProviderSelector{Type: "postgres", Version: "^15", Labels: map[string]v1alpha1.LabelValue{"tier": "gold"}}},
			{Alias: "payments", Provider: &v1alpha1.ProviderReference{Name: "payments", Namespace: "team-b"}},
			{Alias: "cache", Selector: &v1alpha1.ProviderSelector{Type: "redis"}},
			{Alias: "queue", Selector: &v1alpha1.ProviderSelector{Type: "nats", Namespace: "shared"}},
			{Alias: "api", Selector: &v1alpha1.ProviderSelector{Type: "http", Namespace: "*", Version: "^1"}},
		}},
	}
	deps, err := Dependencies(ds)
	if err != nil {
		t.Fatalf("Dependencies() error = %v, want nil", err)
	}
	// The selector syntax is the shared currency: compare through it.
	got := registry.FormatDependencies(deps)
	want := "db=postgresql@^15,tier=gold;payments=team-b/payments;cache=redis@*;queue=shared/nats@*;api=*/http@^1"
	if got != want {
		t.Errorf("Dependencies() = %q, want %q", got, want)
	}

	tests := []struct {
		name string
		dep  v1alpha1.Dependency
	}{
		{name: "bad range", dep: v1alpha1.Dependency{Alias: "db", Selector: &v1alpha1.ProviderSelector{Type: "postgresql", Version: "^1.x.3"}}},
		{name: "neither", dep: v1alpha1.Dependency{Alias: "db"}},
		{name: "both", dep: v1alpha1.Dependency{Alias: "db", Provider: &v1alpha1.ProviderReference{Name: "a"}, Selector: &v1alpha1.ProviderSelector{Type: "http"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DependencySelector(tt.dep); err == nil {
				t.Errorf("DependencySelector(%+v) error = nil, want an error", tt.dep)
			}
		})
	}
}

// TestRoundTrip converts a registry provider to an object and back.
func TestRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 123456000, time.UTC)
	in := registry.Provider{
		Namespace: "team-a", Name: "orders-db", Type: "postgresql", Version: "15.2.0",
		Labels:    map[string]string{"tier": "gold"},
		Endpoints: []registry.Endpoint{{URL: "postgres://db:5432/app", Ready: true}, {URL: "postgres://db-2:5432/app"}},
		Config:    map[string]string{"database": "app"},
		SecretRef: &registry.SecretRef{Name: "db-credentials", Keys: []string{"password"}},
		Scope:     registry.Scope{Namespaces: []string{"*"}, WorkloadLabels: map[string]string{"app": "shop"}},
		Lease:     &registry.Lease{TTL: registry.Duration(30 * time.Second)},
		Owner:     PodOwner("team-a", "fn-1", "0f1e"),
	}
	obj := &v1alpha1.Provider{}
	if err := applyProvider(obj, &in, now); err != nil {
		t.Fatalf("applyProvider() error = %v, want nil", err)
	}
	obj.ResourceVersion = "42"
	out, err := FromObject(obj)
	if err != nil {
		t.Fatalf("FromObject() error = %v, want nil", err)
	}
	want := in
	want.Revision = 42
	want.Lease = &registry.Lease{TTL: in.Lease.TTL, ExpiresAt: now.Add(30 * time.Second)}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

// TestFromKnative converts a Provider on a Knative Service: without
// spec.version it publishes the version its status took from the primary
// revision, and its bindings carry the revision and the traffic split as
// config; spec.version and spec.config keys win; a write back through the
// store keeps neither in the spec.
func TestFromKnative(t *testing.T) {
	knative := func(version string, config map[string]string) *v1alpha1.Provider {
		return &v1alpha1.Provider{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "greeter", ResourceVersion: "7"},
			Spec: v1alpha1.ProviderSpec{Type: "http", Version: version, Config: config,
				ServiceRef: &v1alpha1.ServiceReference{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "greeter"}},
			Status: v1alpha1.ProviderStatus{
				Endpoints: []v1alpha1.EndpointStatus{{URL: "http://greeter.team-a.svc.cluster.local", Ready: true}},
				Version:   "2.0.0", Revision: "greeter-00002",
				Traffic: []v1alpha1.RevisionTraffic{
					{RevisionName: "greeter-00002", Percent: 80, Version: "2.0.0"},
					{RevisionName: "greeter-00001", Percent: 20, Version: "1.0.0"}},
				KnativeTraffic: "80% greeter-00002 2.0.0, 20% greeter-00001 1.0.0",
			},
		}
	}
	tests := []struct {
		name        string
		obj         *v1alpha1.Provider
		wantVersion string
		wantConfig  map[string]string
	}{
		{name: "follows the revision", obj: knative("", nil), wantVersion: "2.0.0",
			wantConfig: map[string]string{"knative-revision": "greeter-00002", "knative-traffic": "80% greeter-00002 2.0.0, 20% greeter-00001 1.0.0"}},
		{name: "spec.version wins", obj: knative("1.5.0", map[string]string{"motd": "hi"}), wantVersion: "1.5.0",
			wantConfig: map[string]string{"motd": "hi", "knative-revision": "greeter-00002", "knative-traffic": "80% greeter-00002 2.0.0, 20% greeter-00001 1.0.0"}},
		{name: "spec.config wins", obj: knative("", map[string]string{"knative-revision": "mine"}), wantVersion: "2.0.0",
			wantConfig: map[string]string{"knative-revision": "mine", "knative-traffic": "80% greeter-00002 2.0.0, 20% greeter-00001 1.0.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromObject(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != tt.wantVersion {
				t.Errorf("FromObject().Version = %q, want %q", got.Version, tt.wantVersion)
			}
			if diff := cmp.Diff(tt.wantConfig, got.Config); diff != "" {
				t.Errorf("FromObject().Config mismatch (-want +got):\n%s", diff)
			}
			back := tt.obj.DeepCopy()
			if err := applyProvider(back, &got, time.Now()); err != nil {
				t.Fatal(err)
			}
			if back.Spec.Version != tt.obj.Spec.Version {
				t.Errorf("written back: spec.version = %q, want %q", back.Spec.Version, tt.obj.Spec.Version)
			}
			if diff := cmp.Diff(tt.obj.Spec.Config, back.Spec.Config); diff != "" {
				t.Errorf("written back: spec.config mismatch (-want +got):\n%s", diff)
			}
		})
	}
	core := knative("", nil)
	core.Spec.ServiceRef = &v1alpha1.ServiceReference{APIVersion: "v1", Kind: "Service", Name: "greeter"}
	if got, err := FromObject(core); err != nil || got.Version != "" || got.Config != nil {
		t.Errorf("FromObject(core Service provider) = version %q config %v, %v; want neither from status", got.Version, got.Config, err)
	}
}

// newOfflineStore returns a store with no API server, for the parts that
// need none.
func newOfflineStore() *Store {
	opts := Options{}.withDefaults()
	return &Store{opts: opts, log: opts.Logger, secrets: newSecretCache(16), hub: watchhub.New(opts.WatchBuffer, opts.Logger), leases: map[string]leaseEntry{}}
}

func providerAt(name string, rev int64) *v1alpha1.Provider {
	return &v1alpha1.Provider{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, ResourceVersion: strconv.FormatInt(rev, 10)},
		Spec:       v1alpha1.ProviderSpec{Type: "http", Endpoints: []v1alpha1.Endpoint{{URL: "http://a:1", Ready: true}}},
	}
}

// TestConsume feeds the watch loop's consumer a scripted API watch:
// events are recorded in order, each once; bookmarks move the revision on;
// 410 Gone asks for a resync.
func TestConsume(t *testing.T) {
	s := newOfflineStore()
	s.logStart, s.lastRev = 10, 10
	ch, err := s.Watch(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}

	fw := watch.NewFakeWithChanSize(16, false)
	fw.Add(providerAt("a", 11))
	fw.Modify(providerAt("a", 13))
	fw.Modify(providerAt("a", 12)) // out of order: dropped
	fw.Action(watch.Bookmark, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "20"}})
	fw.Delete(providerAt("a", 21))
	fw.Error(&apierrors.NewResourceExpired("too old resource version: 21 (30)").ErrStatus)
	last, gone, seen := s.consume(context.Background(), fw, 10)
	if last != 21 || !gone || !seen {
		t.Errorf("consume() = %d, gone %t, seen %t; want 21, gone, seen", last, gone, seen)
	}

	var got []string
	for range 3 {
		ev := <-ch
		got = append(got, string(ev.Type)+" "+ev.Provider.Key()+" @"+strconv.FormatInt(ev.Revision, 10))
	}
	want := []string{"PUT default/a @11", "PUT default/a @13", "DELETE default/a @21"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	if s.lastRev != 21 {
		t.Errorf("last revision = %d, want 21", s.lastRev)
	}

	// Trimming the log moves its start: older watches are compacted.
	s.opts.MaxEvents = 4
	for rev := int64(22); rev < 30; rev++ {
		s.record(registry.Event{Type: registry.Put, Provider: registry.Provider{Namespace: "default", Name: "b"}, Revision: rev})
	}
	if _, err := s.Watch(t.Context(), 21); !errors.Is(err, registry.ErrCompacted) {
		t.Errorf("Watch(21) after trimming error = %v, want ErrCompacted", err)
	}
	from := s.logStart
	w, err := s.Watch(t.Context(), from)
	if err != nil {
		t.Fatalf("Watch(%d), the log start, error = %v, want nil", from, err)
	}
	if ev := <-w; ev.Revision != from+1 {
		t.Errorf("first replayed revision = %d, want %d", ev.Revision, from+1)
	}
}

// TestDependencySplit converts a DependencySet's weighted targets, and
// refuses the bad ones the API server would also refuse (for objects that
// bypassed it) with an error naming the target's field.
func TestDependencySplit(t *testing.T) {
	v1 := &v1alpha1.ProviderReference{Name: "greeter-v1"}
	v2 := &v1alpha1.ProviderReference{Name: "greeter-v2"}
	d, err := Dependency(v1alpha1.Dependency{Alias: "greeter", Targets: []v1alpha1.DependencyTarget{
		{Weight: 10, Selector: &v1alpha1.ProviderSelector{Type: "http", Version: "^2"}},
		{Weight: 90, Provider: v1},
	}})
	if err != nil {
		t.Fatalf("Dependency(split) = %v", err)
	}
	if got := registry.FormatDependencies([]registry.Dependency{d}); got != "greeter=10%http@^2,90%greeter-v1" || d.Selector.Provider != "greeter-v1" {
		t.Errorf("Dependency(split) = %q with primary %q, want greeter=10%%http@^2,90%%greeter-v1 with primary greeter-v1", got, d.Selector)
	}
	tests := []struct {
		name    string
		targets []v1alpha1.DependencyTarget
		want    string
	}{
		{name: "sum", targets: []v1alpha1.DependencyTarget{{Weight: 90, Provider: v1}, {Weight: 20, Provider: v2}}, want: "targets: the weights add up to 110, not 100"},
		{name: "negative", targets: []v1alpha1.DependencyTarget{{Weight: 110, Provider: v1}, {Weight: -10, Provider: v2}}, want: "targets[0].weight: 110 is not a whole percentage"},
		{name: "missing selector", targets: []v1alpha1.DependencyTarget{{Weight: 90, Provider: v1}, {Weight: 10}}, want: "targets[1]: set provider"},
		{name: "duplicate", targets: []v1alpha1.DependencyTarget{{Weight: 50, Provider: v1}, {Weight: 50, Provider: v1}}, want: `targets[1].provider or selector: "greeter-v1" repeats target 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Dependency(v1alpha1.Dependency{Alias: "greeter", Targets: tt.targets})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dependency(%+v) = %v, want an error saying %q", tt.targets, err, tt.want)
			}
		})
	}
	if _, err := Dependency(v1alpha1.Dependency{Alias: "greeter", Provider: v1, Targets: []v1alpha1.DependencyTarget{{Weight: 100, Provider: v2}}}); err == nil {
		t.Errorf("Dependency(provider and targets) = nil error, want one")
	}
}
