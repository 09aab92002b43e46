package kube

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
)

const validationNamespace = "validation"

// goodProvider returns a Provider that sets every field the API server
// validates, with good values.
func goodProvider() *v1alpha1.Provider {
	return &v1alpha1.Provider{
		ObjectMeta: metav1.ObjectMeta{Namespace: validationNamespace, Name: "orders-db"},
		Spec: v1alpha1.ProviderSpec{
			Type:    "postgresql",
			Version: "15.2.0",
			Labels:  map[string]v1alpha1.LabelValue{"tier": "gold", "example.com/region": "eu-west_1"},
			Endpoints: []v1alpha1.Endpoint{
				{URL: "postgres://orders-db.team-a:5432/app", Ready: true},
				{URL: "http://[fd00::1]:8080/", Ready: false},
			},
			Config:    map[string]string{"database": "app", "ssl.mode": "require"},
			SecretRef: &v1alpha1.SecretReference{Name: "orders-db.credentials", Keys: []string{"username", "password"}},
			Scope: &v1alpha1.Scope{
				Namespaces:      []string{"team-a", "*"},
				ServiceAccounts: []string{"checkout", "system.sa"},
				Workloads:       []string{"checkout"},
				WorkloadLabels:  map[string]v1alpha1.LabelValue{"app.kubernetes.io/part-of": "shop"},
			},
		},
	}
}

// goodDependencySet returns a DependencySet with both kinds of dependency.
func goodDependencySet() *v1alpha1.DependencySet {
	return &v1alpha1.DependencySet{
		ObjectMeta: metav1.ObjectMeta{Namespace: validationNamespace, Name: "checkout"},
		Spec: v1alpha1.DependencySetSpec{
			Selector: metav1.LabelSelector{
				MatchLabels: map[string]string{"app": "checkout"},
				MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}},
					{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
				},
			},
			Dependencies: []v1alpha1.Dependency{
				{Alias: "db", Selector: &v1alpha1.ProviderSelector{Type: "postgresql", Version: ">=15.1 <16 || ^17.0.0-rc.1", Labels: map[string]v1alpha1.LabelValue{"tier": "gold"}}},
				{Alias: "payments", Provider: &v1alpha1.ProviderReference{Name: "payments", Namespace: "team-b"}},
				{Alias: "cache", Selector: &v1alpha1.ProviderSelector{Type: "redis"}},
			},
		},
	}
}

func provider(mutate func(p *v1alpha1.Provider)) func() client.Object {
	return func() client.Object {
		p := goodProvider()
		mutate(p)
		return p
	}
}

func dependencySet(mutate func(d *v1alpha1.DependencySet)) func() client.Object {
	return func() client.Object {
		d := goodDependencySet()
		mutate(d)
		return d
	}
}

// goodSplit is a weighted split: 90% to greeter-v1, 10% to greeter-v2.
func goodSplit() v1alpha1.Dependency {
	return v1alpha1.Dependency{Alias: "greeter", Targets: []v1alpha1.DependencyTarget{
		{Weight: 90, Provider: &v1alpha1.ProviderReference{Name: "greeter-v1"}},
		{Weight: 10, Provider: &v1alpha1.ProviderReference{Name: "greeter-v2"}},
	}}
}

// split returns the good DependencySet with goodSplit as its fourth
// dependency, its targets changed by mutate and the dependency by more.
func split(mutate func([]v1alpha1.DependencyTarget), more ...func(*v1alpha1.Dependency)) func() client.Object {
	return dependencySet(func(d *v1alpha1.DependencySet) {
		dep := goodSplit()
		mutate(dep.Targets)
		for _, m := range more {
			m(&dep)
		}
		d.Spec.Dependencies = append(d.Spec.Dependencies, dep)
	})
}

// rawDependencySet is the good DependencySet with goodSplit as its fourth
// dependency, as unstructured content changed by mutate.
func rawDependencySet(t *testing.T, mutate func(obj map[string]any)) func() client.Object {
	return func() client.Object {
		d := goodDependencySet()
		d.Spec.Dependencies = append(d.Spec.Dependencies, goodSplit())
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
		if err != nil {
			t.Fatal(err)
		}
		mutate(content)
		u := &unstructured.Unstructured{Object: content}
		u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("DependencySet"))
		return u
	}
}

// rawProvider returns a good Provider as unstructured content changed by
// mutate, for values the Go types cannot hold.
func rawProvider(t *testing.T, mutate func(obj map[string]any)) func() client.Object {
	return func() client.Object {
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(goodProvider())
		if err != nil {
			t.Fatal(err)
		}
		mutate(content)
		u := &unstructured.Unstructured{Object: content}
		u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Provider"))
		return u
	}
}

func setField(t *testing.T, value any, path ...string) func(map[string]any) {
	return func(obj map[string]any) {
		if err := unstructured.SetNestedField(obj, value, path...); err != nil {
			t.Fatal(err)
		}
	}
}

func endpoints(n int) []v1alpha1.Endpoint {
	eps := make([]v1alpha1.Endpoint, n)
	for i := range eps {
		eps[i] = v1alpha1.Endpoint{URL: fmt.Sprintf("http://10.0.0.%d:8080", i), Ready: true}
	}
	return eps
}

// TestAPIServerRefusesBadObjects sends bad Providers and DependencySets to
// a real API server (server-side dry run) and checks that each is refused
// as invalid, with an error naming the field and saying what is wrong.
func TestAPIServerRefusesBadObjects(t *testing.T) {
	c := cluster(t)
	ensureNamespace(t, c, validationNamespace)

	tests := []struct {
		name      string
		obj       func() client.Object
		wantField string // the field path the error names
		wantMsg   string // what the error says about it
	}{
		// Provider: names, type and version.
		{name: "provider name with a dot", obj: provider(func(p *v1alpha1.Provider) { p.Name = "orders.db" }), wantField: "metadata.name", wantMsg: "must be a DNS-1123 label"},
		{name: "type missing", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Type = "" }), wantField: "spec.type", wantMsg: "at least 1 chars long"},
		{name: "type upper case", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Type = "Postgres" }), wantField: "spec.type", wantMsg: "must be a DNS-1123 label"},
		{name: "type too long", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Type = strings.Repeat("a", 64) }), wantField: "spec.type", wantMsg: "Too long: may not be more than 63 bytes"},
		{name: "version not semver", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Version = "15" }), wantField: "spec.version", wantMsg: "must be a semantic version"},
		{name: "version with leading zero", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Version = "1.02.0" }), wantField: "spec.version", wantMsg: "must be a semantic version"},
		// Labels.
		{name: "label key with a space", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Labels = map[string]v1alpha1.LabelValue{"bad key": "x"} }), wantField: "spec.labels", wantMsg: "keys must be label keys"},
		{name: "label value too long", obj: provider(func(p *v1alpha1.Provider) {
			p.Spec.Labels = map[string]v1alpha1.LabelValue{"tier": v1alpha1.LabelValue(strings.Repeat("g", 64))}
		}), wantField: "spec.labels.tier", wantMsg: "Too long: may not be more than 63 bytes"},
		{name: "label value with a bang", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Labels = map[string]v1alpha1.LabelValue{"tier": "gold!"} }), wantField: "spec.labels", wantMsg: "values must be label values"},
		// Endpoints and serviceRef.
		{name: "endpoint not a URL", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Endpoints[1].URL = "orders-db:5432" }), wantField: "spec.endpoints[1].url", wantMsg: "must be an absolute URL"},
		{name: "endpoint relative URL", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Endpoints[0].URL = "/app" }), wantField: "spec.endpoints[0].url", wantMsg: "must be an absolute URL"},
		{name: "endpoint with credentials", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Endpoints[0].URL = "postgres://app:s3cret@orders-db:5432/app" }), wantField: "spec.endpoints[0].url", wantMsg: "must not carry user information"},
		{name: "too many endpoints", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Endpoints = endpoints(65) }), wantField: "spec.endpoints", wantMsg: "must have at most 64 items"},
		{name: "endpoints and serviceRef", obj: provider(func(p *v1alpha1.Provider) { p.Spec.ServiceRef = &v1alpha1.ServiceReference{Name: "orders-db"} }), wantField: "spec", wantMsg: "spec.endpoints and spec.serviceRef are exclusive"},
		{name: "neither endpoints nor serviceRef", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Endpoints = nil }), wantField: "spec", wantMsg: "spec.endpoints or spec.serviceRef is required"},
		{name: "serviceRef of a Deployment", obj: provider(func(p *v1alpha1.Provider) {
			p.Spec.Endpoints = nil
			p.Spec.ServiceRef = &v1alpha1.ServiceReference{APIVersion: "apps/v1", Name: "orders-db"}
		}), wantField: "spec.serviceRef.apiVersion", wantMsg: `Unsupported value: "apps/v1"`},
		{name: "serviceRef port out of range", obj: provider(func(p *v1alpha1.Provider) {
			p.Spec.Endpoints = nil
			p.Spec.ServiceRef = &v1alpha1.ServiceReference{Name: "orders-db", Port: ptr.To(intstr.FromInt32(70000))}
		}), wantField: "spec.serviceRef.port", wantMsg: "must be a port number 1-65535 or a port name"},
		{name: "serviceRef port name with upper case", obj: provider(func(p *v1alpha1.Provider) {
			p.Spec.Endpoints = nil
			p.Spec.ServiceRef = &v1alpha1.ServiceReference{Name: "orders-db", Port: ptr.To(intstr.FromString("Postgres"))}
		}), wantField: "spec.serviceRef.port", wantMsg: "must be a port number 1-65535 or a port name"},
		{name: "port on a Knative Service", obj: provider(func(p *v1alpha1.Provider) {
			p.Spec.Endpoints = nil
			p.Spec.ServiceRef = &v1alpha1.ServiceReference{APIVersion: "serving.knative.dev/v1", Name: "payments", Port: ptr.To(intstr.FromInt32(80))}
		}), wantField: "spec.serviceRef", wantMsg: "spec.serviceRef.port is not used with a Knative Service"},
		{name: "serviceRef scheme", obj: provider(func(p *v1alpha1.Provider) {
			p.Spec.Endpoints = nil
			p.Spec.ServiceRef = &v1alpha1.ServiceReference{Name: "orders-db", Scheme: "http://"}
		}), wantField: "spec.serviceRef.scheme", wantMsg: "must be a URL scheme"},
		// Config and secrets: keys become file names.
		{name: "config key escaping the directory", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Config = map[string]string{"../etc/passwd": "x"} }), wantField: "spec.config", wantMsg: "without '/' or '..'"},
		{name: "config key with a slash", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Config = map[string]string{"a/b": "x"} }), wantField: "spec.config", wantMsg: "without '/' or '..'"},
		{name: "config key with two dots", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Config = map[string]string{"a..b": "x"} }), wantField: "spec.config", wantMsg: "without '/' or '..'"},
		{name: "config value too long", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Config = map[string]string{"big": strings.Repeat("x", 4097)} }), wantField: "spec.config", wantMsg: "at most 4096 bytes"},
		{name: "secret key escaping the directory", obj: provider(func(p *v1alpha1.Provider) { p.Spec.SecretRef.Keys = []string{"username", "../token"} }), wantField: "spec.secretRef.keys[1]", wantMsg: "without '/' or '..'"},
		{name: "secret name upper case", obj: provider(func(p *v1alpha1.Provider) { p.Spec.SecretRef.Name = "Creds" }), wantField: "spec.secretRef.name", wantMsg: "must be a Secret name"},
		// Scope.
		{name: "scope namespace not a label", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Scope.Namespaces = []string{"team_a"} }), wantField: "spec.scope.namespaces[0]", wantMsg: "must be namespace names"},
		{name: "scope workload not a label", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Scope.Workloads = []string{"checkout", "Billing"} }), wantField: "spec.scope.workloads[1]", wantMsg: "must be DNS-1123 labels"},
		{name: "scope service account", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Scope.ServiceAccounts = []string{"-sa"} }), wantField: "spec.scope.serviceAccounts[0]", wantMsg: "must be service account names"},
		{name: "scope workload label key", obj: provider(func(p *v1alpha1.Provider) { p.Spec.Scope.WorkloadLabels = map[string]v1alpha1.LabelValue{"/app": "x"} }), wantField: "spec.scope.workloadLabels", wantMsg: "keys must be label keys"},
		// Lease.
		{name: "lease TTL too short", obj: provider(func(p *v1alpha1.Provider) {
			p.Spec.Lease = &v1alpha1.Lease{TTL: metav1.Duration{Duration: 500 * time.Millisecond}}
		}), wantField: "spec.lease.ttl", wantMsg: "must be a duration between 1s and 24h"},
		{name: "lease TTL too long", obj: provider(func(p *v1alpha1.Provider) {
			p.Spec.Lease = &v1alpha1.Lease{TTL: metav1.Duration{Duration: 25 * time.Hour}}
		}), wantField: "spec.lease.ttl", wantMsg: "must be a duration between 1s and 24h"},
		{name: "lease TTL not a duration", obj: rawProvider(t, setField(t, map[string]any{"ttl": "soon"}, "spec", "lease")), wantField: "spec.lease.ttl", wantMsg: "must be a duration between 1s and 24h"},
		{name: "endpoint ready not a boolean", obj: rawProvider(t, setField(t, []any{map[string]any{"url": "http://a:1", "ready": "yes"}}, "spec", "endpoints")), wantField: "spec.endpoints[0].ready", wantMsg: "must be of type boolean"},

		// DependencySet.
		{name: "no dependencies", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies = nil }), wantField: "spec.dependencies", wantMsg: "Required value"},
		{name: "alias twice", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies[2].Alias = "db" }), wantField: "spec.dependencies[2]", wantMsg: "Duplicate value"},
		{name: "alias upper case", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies[0].Alias = "DB" }), wantField: "spec.dependencies[0].alias", wantMsg: "alias must be a DNS-1123 label"},
		{name: "provider and selector", obj: dependencySet(func(d *v1alpha1.DependencySet) {
			d.Spec.Dependencies[1].Selector = &v1alpha1.ProviderSelector{Type: "http"}
		}), wantField: "spec.dependencies[1]", wantMsg: "set exactly one of provider"},
		{name: "neither provider nor selector", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies[2].Selector = nil }), wantField: "spec.dependencies[2]", wantMsg: "set exactly one of provider"},
		{name: "provider name with a dot", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies[1].Provider.Name = "pay.ments" }), wantField: "spec.dependencies[1].provider.name", wantMsg: "must be a DNS-1123 label"},
		{name: "provider namespace", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies[1].Provider.Namespace = "Team-B" }), wantField: "spec.dependencies[1].provider.namespace", wantMsg: "must be a namespace name"},
		{name: "selector type", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies[0].Selector.Type = "postgres@^15" }), wantField: "spec.dependencies[0].selector.type", wantMsg: "must be a DNS-1123 label"},
		{name: "selector namespace", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies[0].Selector.Namespace = "all" + "/" }), wantField: "spec.dependencies[0].selector.namespace", wantMsg: "must be a namespace name (a DNS-1123 label) or *"},
		{name: "selector version not a range", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies[0].Selector.Version = "latest" }), wantField: "spec.dependencies[0].selector.version", wantMsg: "must be a version range"},
		{name: "selector version operator apart", obj: dependencySet(func(d *v1alpha1.DependencySet) { d.Spec.Dependencies[0].Selector.Version = ">= 15" }), wantField: "spec.dependencies[0].selector.version", wantMsg: "must be a version range"},
		{name: "selector label key", obj: dependencySet(func(d *v1alpha1.DependencySet) {
			d.Spec.Dependencies[0].Selector.Labels = map[string]v1alpha1.LabelValue{"tier=gold": ""}
		}), wantField: "spec.dependencies[0].selector.labels", wantMsg: "keys must be label keys"},
		{name: "too many dependencies", obj: dependencySet(func(d *v1alpha1.DependencySet) {
			d.Spec.Dependencies = nil
			for i := range 65 {
				d.Spec.Dependencies = append(d.Spec.Dependencies, v1alpha1.Dependency{Alias: fmt.Sprintf("d%d", i), Provider: &v1alpha1.ProviderReference{Name: "p"}})
			}
		}), wantField: "spec.dependencies", wantMsg: "must have at most 64 items"},
		// Weighted traffic splits.
		{name: "split weights not adding up to 100", obj: split(func(ts []v1alpha1.DependencyTarget) { ts[1].Weight = 20 }), wantField: "spec.dependencies[3].targets", wantMsg: "the weights must add up to 100"},
		{name: "split negative weight", obj: split(func(ts []v1alpha1.DependencyTarget) { ts[0].Weight, ts[1].Weight = 110, -10 }), wantField: "spec.dependencies[3].targets[1].weight", wantMsg: "should be greater than or equal to 0"},
		{name: "split weight over 100", obj: split(func(ts []v1alpha1.DependencyTarget) { ts[0].Weight, ts[1].Weight = 110, -10 }), wantField: "spec.dependencies[3].targets[0].weight", wantMsg: "should be less than or equal to 100"},
		{name: "split target without provider or selector", obj: split(func(ts []v1alpha1.DependencyTarget) { ts[1].Provider = nil }), wantField: "spec.dependencies[3].targets[1]", wantMsg: "set exactly one of provider"},
		{name: "split target with provider and selector", obj: split(func(ts []v1alpha1.DependencyTarget) { ts[1].Selector = &v1alpha1.ProviderSelector{Type: "http"} }), wantField: "spec.dependencies[3].targets[1]", wantMsg: "set exactly one of provider"},
		{name: "split duplicate providers", obj: split(func(ts []v1alpha1.DependencyTarget) { ts[1].Provider.Name = "greeter-v1" }), wantField: "spec.dependencies[3].targets", wantMsg: "each provider or selector may appear only once"},
		{name: "split duplicate selectors", obj: split(func(ts []v1alpha1.DependencyTarget) {
			ts[0].Provider, ts[0].Selector = nil, &v1alpha1.ProviderSelector{Type: "http", Version: "^1"}
			ts[1].Provider, ts[1].Selector = nil, &v1alpha1.ProviderSelector{Type: "http", Version: "^1"}
		}), wantField: "spec.dependencies[3].targets", wantMsg: "each provider or selector may appear only once"},
		{name: "split target with a bad provider name", obj: split(func(ts []v1alpha1.DependencyTarget) { ts[1].Provider.Name = "Greeter" }), wantField: "spec.dependencies[3].targets[1].provider.name", wantMsg: "must be a DNS-1123 label"},
		{name: "split and selector", obj: split(func(ts []v1alpha1.DependencyTarget) {}, func(d *v1alpha1.Dependency) { d.Selector = &v1alpha1.ProviderSelector{Type: "http"} }), wantField: "spec.dependencies[3]", wantMsg: "set exactly one of provider"},
		{name: "split without targets", obj: split(func(ts []v1alpha1.DependencyTarget) {}, func(d *v1alpha1.Dependency) { d.Targets = []v1alpha1.DependencyTarget{} }), wantField: "spec.dependencies[3]", wantMsg: "set exactly one of provider"},
		{name: "split with too many targets", obj: split(func(ts []v1alpha1.DependencyTarget) {}, func(d *v1alpha1.Dependency) {
			d.Targets = nil
			for i := range 5 {
				d.Targets = append(d.Targets, v1alpha1.DependencyTarget{Weight: 20, Provider: &v1alpha1.ProviderReference{Name: fmt.Sprintf("g%d", i)}})
			}
		}), wantField: "spec.dependencies[3].targets", wantMsg: "must have at most 4 items"},
		{name: "split weight missing", obj: rawDependencySet(t, func(obj map[string]any) {
			deps, _, _ := unstructured.NestedSlice(obj, "spec", "dependencies")
			dep := deps[3].(map[string]any)
			delete(dep["targets"].([]any)[1].(map[string]any), "weight")
			_ = unstructured.SetNestedSlice(obj, deps, "spec", "dependencies")
		}), wantField: "spec.dependencies[3].targets[1].weight", wantMsg: "Required value"},
		{name: "selector operator", obj: dependencySet(func(d *v1alpha1.DependencySet) {
			d.Spec.Selector.MatchExpressions[0].Operator = "Equals"
		}), wantField: "spec.selector", wantMsg: "operators must be In, NotIn, Exists or DoesNotExist"},
		{name: "selector In without values", obj: dependencySet(func(d *v1alpha1.DependencySet) {
			d.Spec.Selector.MatchExpressions[0].Values = nil
		}), wantField: "spec.selector", wantMsg: "In and NotIn need values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := tt.obj()
			err := c.Create(t.Context(), obj, client.DryRunAll)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("Create(%s) error = %v, want Invalid naming %s", tt.name, err, tt.wantField)
			}
			msg := err.Error()
			// The API server writes "<field>: <problem>" for each cause; a
			// rule on the object's root (metadata.name) gets no field path,
			// so its message starts with the field instead.
			if !strings.Contains(msg, tt.wantField+": ") && !strings.Contains(msg, tt.wantField+" must") {
				t.Errorf("Create() error = %q, want it to name field %q", msg, tt.wantField)
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("Create() error = %q, want it to say %q", msg, tt.wantMsg)
			}
		})
	}
}

// TestAPIServerAcceptsGoodObjects creates good objects for real, including
// the edge cases next to the refused ones, and checks the defaults the API
// server fills in.
func TestAPIServerAcceptsGoodObjects(t *testing.T) {
	c := cluster(t)
	ensureNamespace(t, c, validationNamespace)
	leased := goodProvider()
	leased.Name = "runtime-registration"
	leased.Spec.Endpoints = nil
	leased.Spec.Lease = &v1alpha1.Lease{TTL: metav1.Duration{Duration: 24 * time.Hour}}
	core := goodProvider()
	core.Name = "from-service"
	core.Spec.Endpoints = nil
	core.Spec.ServiceRef = &v1alpha1.ServiceReference{Name: "orders-db", Port: ptr.To(intstr.FromString("pg")), Scheme: "postgresql"} // apiVersion and kind default
	knative := goodProvider()
	knative.Name = "from-knative"
	knative.Spec.Endpoints = nil
	knative.Spec.ServiceRef = &v1alpha1.ServiceReference{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "payments"}
	// As kubectl would send it: without the fields that have defaults.
	minimal := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"namespace": validationNamespace, "name": "minimal"},
		"spec": map[string]any{
			"type":      "http",
			"endpoints": []any{map[string]any{"url": "http://greeter.team-a.svc:8080"}},
		},
	}}
	minimal.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Provider"))
	anyVersion := goodDependencySet()
	anyVersion.Name = "any-version"
	anyVersion.Spec.Selector = metav1.LabelSelector{}
	anyVersion.Spec.Dependencies = []v1alpha1.Dependency{{Alias: "cache", Selector: &v1alpha1.ProviderSelector{Type: "redis", Version: "*"}}}
	// Splits: two providers; a selector, a provider and a zero weight.
	splits := goodDependencySet()
	splits.Name = "splits"
	mixed := v1alpha1.Dependency{Alias: "mixed", Targets: []v1alpha1.DependencyTarget{
		{Weight: 100, Selector: &v1alpha1.ProviderSelector{Type: "http", Version: "^1"}},
		{Weight: 0, Selector: &v1alpha1.ProviderSelector{Type: "http", Version: "^2"}},
		{Weight: 0, Provider: &v1alpha1.ProviderReference{Name: "greeter-v1", Namespace: "team-b"}},
	}}
	splits.Spec.Dependencies = append(splits.Spec.Dependencies, goodSplit(), mixed)

	for _, obj := range []client.Object{goodProvider(), leased, core, knative, minimal, goodDependencySet(), anyVersion, splits} {
		if err := c.Create(t.Context(), obj); err != nil {
			t.Fatalf("Create(%T %s) error = %v, want nil", obj, obj.GetName(), err)
		}
		t.Cleanup(func() { _ = c.Delete(t.Context(), obj) })
	}

	// Defaults: an endpoint is ready unless it says otherwise, and a
	// serviceRef names a core Service unless it says otherwise.
	var got v1alpha1.Provider
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(minimal), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]v1alpha1.Endpoint{{URL: "http://greeter.team-a.svc:8080", Ready: true}}, got.Spec.Endpoints); diff != "" {
		t.Errorf("endpoints after defaulting mismatch (-want +got):\n%s", diff)
	}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(core), &got); err != nil {
		t.Fatal(err)
	}
	want := &v1alpha1.ServiceReference{APIVersion: "v1", Kind: "Service", Name: "orders-db", Port: ptr.To(intstr.FromString("pg")), Scheme: "postgresql"}
	if diff := cmp.Diff(want, got.Spec.ServiceRef); diff != "" {
		t.Errorf("serviceRef after defaulting mismatch (-want +got):\n%s", diff)
	}
}
