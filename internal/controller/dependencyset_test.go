package controller

import (
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
				ObservedGeneration: 3, DependencyCount: 2, ResolvedCount: 2,
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
				ObservedGeneration: 3, DependencyCount: 3, ResolvedCount: 0,
				Dependencies: []v1alpha1.DependencyStatus{
					{Alias: "db", Reason: "OutOfScope"},
					{Alias: "cache", Reason: "NotReady"},
					{Alias: "none", Reason: "InvalidSelector"},
				},
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: 3,
					LastTransitionTime: now, Reason: v1alpha1.ReasonUnresolved, Message: "3 of 3 dependencies unresolved"}},
			},
		},
		{
			name:      "no provider of the type",
			selector:  app,
			deps:      []v1alpha1.Dependency{byType, byName},
			providers: []*registry.Provider{redis},
			want: v1alpha1.DependencySetStatus{
				ObservedGeneration: 3, DependencyCount: 2, ResolvedCount: 1,
				Dependencies: []v1alpha1.DependencyStatus{
					{Alias: "db", Reason: "NoMatch"},
					{Alias: "cache", Provider: "shop/redis"},
				},
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: 3,
					LastTransitionTime: now, Reason: v1alpha1.ReasonUnresolved, Message: "1 of 2 dependencies unresolved"}},
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
				ObservedGeneration: 3, DependencyCount: 1, ResolvedCount: 1,
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
				ObservedGeneration: 3, DependencyCount: 1, ResolvedCount: 1,
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
			if diff := cmp.Diff(tt.want, got, ignoreMessages); diff != "" {
				t.Errorf("dependencySetStatus() mismatch (-want +got):\n%s", diff)
			}
			for _, d := range got.Dependencies {
				if (d.Reason == "") != (d.Message == "") {
					t.Errorf("dependency %s: reason %q with message %q, want both or neither", d.Alias, d.Reason, d.Message)
				}
			}
			if diff := cmp.Diff(tt.status, ds.Status); diff != "" {
				t.Errorf("dependencySetStatus() changed its input's status (-before +after):\n%s", diff)
			}
		})
	}
}
