package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
)

func TestDependencySetStatus(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	earlier := metav1.NewTime(now.Add(-time.Hour))
	ready := []registry.Endpoint{{URL: "http://10.0.0.7:8080", Ready: true}}
	pg := &registry.Provider{Namespace: "shop", Name: "pg", Type: "postgresql", Version: "15.2.0", Endpoints: ready}
	redis := &registry.Provider{Namespace: "shop", Name: "redis", Type: "redis", Endpoints: ready}
	redisDown := &registry.Provider{Namespace: "shop", Name: "redis", Type: "redis"}
	elsewhere := &registry.Provider{Namespace: "billing", Name: "pg", Type: "postgresql", Version: "15.2.0", Endpoints: ready}
	byType := v1alpha1.Dependency{Alias: "db", Selector: &v1alpha1.ProviderSelector{Type: "postgres"}}
	byName := v1alpha1.Dependency{Alias: "cache", Provider: &v1alpha1.ProviderReference{Name: "redis"}}
	app := metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}

	tests := []struct {
		name      string
		selector  metav1.LabelSelector
		deps      []v1alpha1.Dependency
		status    v1alpha1.DependencySetStatus
		providers []*registry.Provider
		want      v1alpha1.DependencySetStatus
	}{
		{
			name:      "all resolved",
			selector:  app,
			deps:      []v1alpha1.Dependency{byType, byName},
			providers: []*registry.Provider{pg, redis},
			want: v1alpha1.DependencySetStatus{
				ObservedGeneration: 3, DependencyCount: 2, ResolvedCount: 2, Providers: "db=shop/pg,cache=shop/redis",
				Dependencies: []v1alpha1.DependencyStatus{
					{Alias: "db", Provider: "shop/pg", Version: "15.2.0"},
					{Alias: "cache", Provider: "shop/redis"},
				},
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 3,
					LastTransitionTime: now, Reason: v1alpha1.ReasonResolved, Message: "all 2 dependencies resolved"}},
			},
		},
		{
			name:      "not ready, out of scope, invalid",
			selector:  app,
			deps:      []v1alpha1.Dependency{{Alias: "db", Provider: &v1alpha1.ProviderReference{Name: "pg", Namespace: "billing"}}, byName, {Alias: "none"}},
			providers: []*registry.Provider{elsewhere, redisDown},
			want: v1alpha1.DependencySetStatus{
				ObservedGeneration: 3, DependencyCount: 3, ResolvedCount: 0, Providers: "db=-,cache=-,none=-",
				Dependencies: []v1alpha1.DependencyStatus{
					{Alias: "db", Reason: "OutOfScope"},
					{Alias: "cache", Reason: "NotReady"},
					{Alias: "none", Reason: "InvalidSelector"},
				},
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: 3,
					LastTransitionTime: now, Reason: v1alpha1.ReasonUnresolved, Message: "3 of 3 dependencies unresolved. " +
						"db (billing/pg): provider billing/pg does not admit consumer in shop (see its scope). 1 candidate(s) of other namespaces not shown (not exported to shop). " +
						"cache (redis): provider shop/redis has no ready endpoint. Candidates: shop/redis rejected by readiness (no endpoint). " +
						"none: set provider (a provider by name) or selector (a type, version range and labels)"}},
			},
		},
		{
			name:      "no provider of the type",
			selector:  app,
			deps:      []v1alpha1.Dependency{byType, byName},
			providers: []*registry.Provider{redis},
			want: v1alpha1.DependencySetStatus{
				ObservedGeneration: 3, DependencyCount: 2, ResolvedCount: 1, Providers: "db=-,cache=shop/redis",
				Dependencies: []v1alpha1.DependencyStatus{
					{Alias: "db", Reason: "NoMatch"},
					{Alias: "cache", Provider: "shop/redis"},
				},
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: 3,
					LastTransitionTime: now, Reason: v1alpha1.ReasonUnresolved, Message: "1 of 2 dependencies unresolved. db (postgresql@*): no provider has type postgresql."}},
			},
		},
		{
			name:     "a split: the primary, every share in the message",
			selector: app,
			deps: []v1alpha1.Dependency{{Alias: "db", Targets: []v1alpha1.DependencyTarget{
				{Weight: 90, Provider: &v1alpha1.ProviderReference{Name: "pg"}},
				{Weight: 10, Provider: &v1alpha1.ProviderReference{Name: "pg-next"}},
			}}},
			providers: []*registry.Provider{pg},
			want: v1alpha1.DependencySetStatus{
				ObservedGeneration: 3, DependencyCount: 1, ResolvedCount: 1, Providers: "db=shop/pg",
				Dependencies: []v1alpha1.DependencyStatus{{Alias: "db", Provider: "shop/pg", Version: "15.2.0",
					Message: "splits invocations: shop/pg weight 90% share 100% (primary), pg-next unresolved (no provider named pg-next in namespace shop) weight 10% share 0%."}},
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 3,
					LastTransitionTime: now, Reason: v1alpha1.ReasonResolved, Message: "all 1 dependencies resolved"}},
			},
		},
		{
			name:     "a split with bad weights",
			selector: app,
			deps: []v1alpha1.Dependency{{Alias: "db", Targets: []v1alpha1.DependencyTarget{
				{Weight: 90, Provider: &v1alpha1.ProviderReference{Name: "pg"}},
				{Weight: 20, Provider: &v1alpha1.ProviderReference{Name: "pg-next"}},
			}}},
			providers: []*registry.Provider{pg},
			want: v1alpha1.DependencySetStatus{
				ObservedGeneration: 3, DependencyCount: 1, ResolvedCount: 0, Providers: "db=-",
				Dependencies: []v1alpha1.DependencyStatus{{Alias: "db", Reason: "InvalidSelector",
					Message: "targets: the weights add up to 110, not 100: change them so that they do, as in 90%greeter-v1,10%greeter-v2"}},
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: 3,
					LastTransitionTime: now, Reason: v1alpha1.ReasonUnresolved, Message: "1 of 1 dependencies unresolved. db: targets: the weights add up to 110, not 100: change them so that they do, as in 90%greeter-v1,10%greeter-v2"}},
			},
		},
		{
			name: "invalid pod selector",
			selector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: "Bogus", Values: []string{"web"}},
			}},
			deps:      []v1alpha1.Dependency{byName},
			providers: []*registry.Provider{redis},
			want: v1alpha1.DependencySetStatus{
				ObservedGeneration: 3, DependencyCount: 1, ResolvedCount: 1, Providers: "cache=shop/redis",
				Dependencies: []v1alpha1.DependencyStatus{{Alias: "cache", Provider: "shop/redis"}},
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: 3,
					LastTransitionTime: now, Reason: "InvalidSelector", Message: `spec.selector: "Bogus" is not a valid label selector operator`}},
			},
		},
		{
			name:     "unchanged Ready keeps its transition time and other conditions stay",
			selector: app,
			deps:     []v1alpha1.Dependency{byName},
			status: v1alpha1.DependencySetStatus{
				ObservedGeneration: 2, DependencyCount: 1, ResolvedCount: 1,
				Dependencies: []v1alpha1.DependencyStatus{{Alias: "cache", Provider: "shop/redis"}},
				Conditions: []metav1.Condition{
					{Type: "Other", Status: metav1.ConditionTrue, LastTransitionTime: earlier, Reason: "Because"},
					{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 2,
						LastTransitionTime: earlier, Reason: v1alpha1.ReasonResolved, Message: "all 1 dependencies resolved"},
				},
			},
			providers: []*registry.Provider{redis},
			want: v1alpha1.DependencySetStatus{
				ObservedGeneration: 3, DependencyCount: 1, ResolvedCount: 1, Providers: "cache=shop/redis",
				Dependencies: []v1alpha1.DependencyStatus{{Alias: "cache", Provider: "shop/redis"}},
				Conditions: []metav1.Condition{
					{Type: "Other", Status: metav1.ConditionTrue, LastTransitionTime: earlier, Reason: "Because"},
					{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 3,
						LastTransitionTime: earlier, Reason: v1alpha1.ReasonResolved, Message: "all 1 dependencies resolved"},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := &v1alpha1.DependencySet{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Generation: 3},
				Spec:       v1alpha1.DependencySetSpec{Selector: tt.selector, Dependencies: tt.deps},
				Status:     *tt.status.DeepCopy(),
			}
			got := dependencySetStatus(ds, tt.providers, now)
			// The messages of failed resolutions are registry.Resolve's,
			// tested there; the reasons are this package's.
			ignoreMessages := cmpopts.IgnoreFields(v1alpha1.DependencyStatus{}, "Message")
			if strings.HasPrefix(tt.name, "a split") {
				ignoreMessages = nil // a split's messages are this package's
			}
			if diff := cmp.Diff(tt.want, got, ignoreMessages); diff != "" {
				t.Errorf("dependencySetStatus() mismatch (-want +got):\n%s", diff)
			}
			for _, d := range got.Dependencies {
				if (d.Reason == "") != (d.Message == "") && !strings.HasPrefix(tt.name, "a split") {
					t.Errorf("dependency %s: reason %q with message %q, want both or neither", d.Alias, d.Reason, d.Message)
				}
			}
			if diff := cmp.Diff(tt.status, ds.Status); diff != "" {
				t.Errorf("dependencySetStatus() changed its input's status (-before +after):\n%s", diff)
			}
		})
	}
}

// TestDependencySetExplanation checks the explanation an unresolved
// dependency carries in its status and the Ready condition: every visible
// candidate with the rule that rejected it, in resolution order, and only
// a count of the candidates of namespaces that do not export to the set's.
func TestDependencySetExplanation(t *testing.T) {
	ep := func(ready bool) []registry.Endpoint {
		return []registry.Endpoint{{URL: "http://10.0.0.7:8080", Ready: ready}}
	}
	providers := []*registry.Provider{
		{Namespace: "shop", Name: "pg-old", Type: "postgresql", Version: "14.1.0", Endpoints: ep(true)},
		{Namespace: "shop", Name: "pg", Type: "postgresql", Version: "15.2.0", Labels: map[string]string{"region": "us"}, Endpoints: ep(false)},
		{Namespace: "shop", Name: "pg-eu", Type: "postgresql", Version: "15.4.0", Labels: map[string]string{"region": "eu"}, Endpoints: ep(true)},
		// Exported to nobody: hidden from the set's readers.
		{Namespace: "billing", Name: "secret-pg", Type: "postgresql", Version: "15.9.0", Endpoints: ep(true)},
	}
	ds := &v1alpha1.DependencySet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Generation: 1},
		Spec: v1alpha1.DependencySetSpec{
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "web"}},
			Dependencies: []v1alpha1.Dependency{{Alias: "db", Selector: &v1alpha1.ProviderSelector{
				Type: "postgresql", Namespace: "*", Version: "^15", Labels: map[string]v1alpha1.LabelValue{"region": "us"}}}},
		},
	}
	got := dependencySetStatus(ds, providers, metav1.Now())
	want := "db (*/postgresql@^15,region=us): 1 matching provider(s) in scope, none with a ready endpoint. Candidates: " +
		"shop/pg-old rejected by version (version 14.1.0 is outside ^15); " +
		"shop/pg-eu rejected by labels (lacks label region=us (has region=eu)); " +
		"shop/pg rejected by readiness (0 of 1 endpoints ready). " +
		"1 candidate(s) of other namespaces not shown (not exported to shop)."
	if d := got.Dependencies[0]; d.Reason != "NotReady" || d.Message != want {
		t.Errorf("status.dependencies[0] = %s: %q\nwant NotReady: %q", d.Reason, d.Message, want)
	}
	cond := got.Conditions[0]
	if wantCond := "1 of 1 dependencies unresolved. " + want; cond.Message != wantCond {
		t.Errorf("Ready message = %q\nwant %q", cond.Message, wantCond)
	}
	if strings.Contains(cond.Message, "secret-pg") {
		t.Errorf("Ready message names a provider of a namespace that does not export to shop: %q", cond.Message)
	}
}

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{in: "short", max: 10, want: "short"},
		{in: "exactly10!", max: 10, want: "exactly10!"},
		{in: "a longer text", max: 10, want: "a longe..."},
		{in: "ééééé", max: 8, want: "éé..."}, // never cuts a rune
	} {
		if got := truncate(tt.in, tt.max); got != tt.want || len(got) > tt.max {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
