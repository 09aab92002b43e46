package registry_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

// prov returns a provider that any consumer may bind to, with one ready
// endpoint; opts adjust it.
func prov(namespace, name, typ, version string, opts ...func(*registry.Provider)) *registry.Provider {
	p := &registry.Provider{
		Namespace: namespace,
		Name:      name,
		Type:      typ,
		Version:   version,
		Endpoints: []registry.Endpoint{{URL: "http://" + name + "." + namespace + ":8080", Ready: true}},
		Scope:     registry.Scope{Namespaces: []string{"*"}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func labels(kv ...string) func(*registry.Provider) {
	return func(p *registry.Provider) {
		p.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func scope(s registry.Scope) func(*registry.Provider) {
	return func(p *registry.Provider) { p.Scope = s }
}

func notReady(p *registry.Provider) {
	for i := range p.Endpoints {
		p.Endpoints[i].Ready = false
	}
	p.Endpoints = append(p.Endpoints, registry.Endpoint{URL: "http://standby:8080", Ready: false})
}

func noEndpoints(p *registry.Provider) { p.Endpoints = nil }

var checkout = registry.Consumer{
	Namespace:      "team-a",
	Name:           "checkout",
	ServiceAccount: "checkout-sa",
	Labels:         map[string]string{"app": "shop", "tier": "web"},
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name      string
		consumer  registry.Consumer
		dep       string // ALIAS=SELECTOR
		providers []*registry.Provider
		want      string // namespace/name of the chosen provider
	}{
		{
			name:     "explicit name beats a better selector match",
			consumer: checkout,
			dep:      "greeter=greeter",
			providers: []*registry.Provider{
				prov("team-a", "greeter", "http", "1.0.0"),
				prov("team-a", "greeter-next", "http", "9.0.0"),
			},
			want: "team-a/greeter",
		},
		{
			name:     "explicit name in the consumer's namespace",
			consumer: checkout,
			dep:      "greeter=greeter",
			providers: []*registry.Provider{
				prov("default", "greeter", "http", "2.0.0"),
				prov("team-a", "greeter", "http", "1.0.0"),
				prov("team-b", "greeter", "http", "3.0.0"),
			},
			want: "team-a/greeter",
		},
		{
			name:     "explicit name in another namespace",
			consumer: checkout,
			dep:      "greeter=team-b/greeter",
			providers: []*registry.Provider{
				prov("team-a", "greeter", "http", "1.0.0"),
				prov("team-b", "greeter", "http", "1.0.0"),
			},
			want: "team-b/greeter",
		},
		{
			name:     "explicit name ignores version and type",
			consumer: checkout,
			dep:      "legacy=legacy",
			providers: []*registry.Provider{
				prov("team-a", "legacy", "generic", "0.1.0-alpha"),
			},
			want: "team-a/legacy",
		},
		{
			name:     "consumer without namespace is in default",
			consumer: registry.Consumer{Name: "fn"},
			dep:      "greeter=greeter",
			providers: []*registry.Provider{
				prov("default", "greeter", "http", "1.0.0", scope(registry.Scope{})),
			},
			want: "default/greeter",
		},
		{
			name:     "type must match",
			consumer: checkout,
			dep:      "db=postgres@*",
			providers: []*registry.Provider{
				prov("team-a", "cache", "redis", "7.0.0"),
				prov("team-a", "db", "postgresql", "15.0.0"),
				prov("team-a", "other", "mysql", "8.0.0"),
			},
			want: "team-a/db",
		},
		{
			name:     "highest version in range wins",
			consumer: checkout,
			dep:      "db=postgresql@^15",
			providers: []*registry.Provider{
				prov("team-a", "pg14", "postgresql", "14.9.0"),
				prov("team-a", "pg15-1", "postgresql", "15.1.0"),
				prov("team-a", "pg15-4", "postgresql", "15.4.0"),
				prov("team-a", "pg15-2", "postgresql", "15.2.0"),
				prov("team-a", "pg16", "postgresql", "16.0.0"),
			},
			want: "team-a/pg15-4",
		},
		{
			name:     "highest version overall",
			consumer: checkout,
			dep:      "db=postgresql@*",
			providers: []*registry.Provider{
				prov("team-a", "pg15", "postgresql", "15.10.0"),
				prov("team-a", "pg9", "postgresql", "9.6.0"),
				prov("team-a", "pg16", "postgresql", "16.0.0"),
			},
			want: "team-a/pg16",
		},
		{
			name:     "no version counts as 0.0.0",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("team-a", "unversioned", "http", ""),
				prov("team-a", "tiny", "http", "0.0.1"),
			},
			want: "team-a/tiny",
		},
		{
			name:     "no version matches 0.0.0",
			consumer: checkout,
			dep:      "api=http@0.0.0",
			providers: []*registry.Provider{
				prov("team-a", "unversioned", "http", ""),
				prov("team-a", "tiny", "http", "0.0.1"),
			},
			want: "team-a/unversioned",
		},
		{
			name:     "invalid version never matches",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("team-a", "broken", "http", "latest"),
				prov("team-a", "ok", "http", "1.0.0"),
			},
			want: "team-a/ok",
		},
		{
			name:     "labels must all match",
			consumer: checkout,
			dep:      "api=http@*,tier=gold,region=eu",
			providers: []*registry.Provider{
				prov("team-a", "gold-us", "http", "3.0.0", labels("tier", "gold", "region", "us")),
				prov("team-a", "silver-eu", "http", "3.0.0", labels("tier", "silver", "region", "eu")),
				prov("team-a", "gold-eu", "http", "1.0.0", labels("tier", "gold", "region", "eu", "extra", "x")),
				prov("team-a", "bare", "http", "4.0.0"),
			},
			want: "team-a/gold-eu",
		},
		{
			name:     "pre-release excluded unless asked",
			consumer: checkout,
			dep:      "db=postgresql@*",
			providers: []*registry.Provider{
				prov("team-a", "rc", "postgresql", "16.0.0-rc.1"),
				prov("team-a", "stable", "postgresql", "15.0.0"),
			},
			want: "team-a/stable",
		},
		{
			name:     "pre-release when the range names it",
			consumer: checkout,
			dep:      "db=postgresql@>=16.0.0-rc.1",
			providers: []*registry.Provider{
				prov("team-a", "rc", "postgresql", "16.0.0-rc.1"),
				prov("team-a", "stable", "postgresql", "15.0.0"),
			},
			want: "team-a/rc",
		},
		{
			name:     "release beats its own pre-release",
			consumer: checkout,
			dep:      "db=postgresql@>=16.0.0-rc.1",
			providers: []*registry.Provider{
				prov("team-a", "rc", "postgresql", "16.0.0-rc.1"),
				prov("team-a", "ga", "postgresql", "16.0.0"),
			},
			want: "team-a/ga",
		},
		{
			name:     "empty scope admits only the provider's namespace",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("team-b", "theirs", "http", "9.0.0", scope(registry.Scope{})),
				prov("team-a", "ours", "http", "1.0.0", scope(registry.Scope{})),
			},
			want: "team-a/ours",
		},
		{
			name:     "scope namespaces list the consumer's",
			consumer: checkout,
			dep:      "api=*/http@*",
			providers: []*registry.Provider{
				prov("team-b", "listed", "http", "2.0.0", scope(registry.Scope{Namespaces: []string{"team-c", "team-a"}})),
				prov("team-b", "unlisted", "http", "3.0.0", scope(registry.Scope{Namespaces: []string{"team-c"}})),
				prov("team-a", "own", "http", "1.0.0"),
			},
			want: "team-b/listed",
		},
		{
			name:     "scope namespace wildcard",
			consumer: checkout,
			dep:      "api=*/http@*",
			providers: []*registry.Provider{
				prov("team-b", "everyone", "http", "2.0.0", scope(registry.Scope{Namespaces: []string{"*"}})),
				prov("team-a", "own", "http", "1.0.0"),
			},
			want: "team-b/everyone",
		},
		{
			name:     "scope service accounts",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("team-a", "billing-only", "http", "3.0.0", scope(registry.Scope{ServiceAccounts: []string{"billing-sa"}})),
				prov("team-a", "checkout-ok", "http", "2.0.0", scope(registry.Scope{ServiceAccounts: []string{"billing-sa", "checkout-sa"}})),
				prov("team-a", "anyone", "http", "1.0.0"),
			},
			want: "team-a/checkout-ok",
		},
		{
			name:     "scope workloads",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("team-a", "billing-only", "http", "3.0.0", scope(registry.Scope{Workloads: []string{"billing"}})),
				prov("team-a", "checkout-ok", "http", "2.0.0", scope(registry.Scope{Workloads: []string{"checkout"}})),
			},
			want: "team-a/checkout-ok",
		},
		{
			name:     "scope workload labels",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("team-a", "wrong-value", "http", "4.0.0", scope(registry.Scope{WorkloadLabels: map[string]string{"app": "blog"}})),
				prov("team-a", "missing-label", "http", "3.0.0", scope(registry.Scope{WorkloadLabels: map[string]string{"app": "shop", "env": "prod"}})),
				prov("team-a", "subset", "http", "2.0.0", scope(registry.Scope{WorkloadLabels: map[string]string{"app": "shop"}})),
			},
			want: "team-a/subset",
		},
		{
			name:     "every scope rule must admit",
			consumer: checkout,
			dep:      "api=*/http@*",
			providers: []*registry.Provider{
				prov("team-b", "wrong-sa", "http", "3.0.0", scope(registry.Scope{
					Namespaces: []string{"team-a"}, ServiceAccounts: []string{"other"}, Workloads: []string{"checkout"},
				})),
				prov("team-b", "all-match", "http", "2.0.0", scope(registry.Scope{
					Namespaces: []string{"team-a"}, ServiceAccounts: []string{"checkout-sa"}, Workloads: []string{"checkout"},
					WorkloadLabels: map[string]string{"tier": "web"},
				})),
			},
			want: "team-b/all-match",
		},
		{
			name:     "providers without a ready endpoint are skipped",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("team-a", "down", "http", "3.0.0", notReady),
				prov("team-a", "empty", "http", "2.5.0", noEndpoints),
				prov("team-a", "up", "http", "2.0.0"),
			},
			want: "team-a/up",
		},
		{
			name:     "tie goes to the consumer's namespace",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("default", "api", "http", "1.0.0"),
				prov("team-a", "zzz", "http", "1.0.0"),
				prov("team-b", "api", "http", "1.0.0"),
			},
			want: "team-a/zzz",
		},
		{
			name:     "tie outside the consumer's namespace goes to the smallest namespace/name",
			consumer: registry.Consumer{Namespace: "team-c", Name: "fn"},
			dep:      "api=*/http@*",
			providers: []*registry.Provider{
				prov("team-b", "a", "http", "1.0.0"),
				prov("team-a", "b", "http", "1.0.0"),
				prov("team-a", "c", "http", "1.0.0"),
			},
			want: "team-a/b",
		},
		{
			name:     "tie in one namespace goes to the smallest name",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("team-a", "beta", "http", "1.0.0"),
				prov("team-a", "alpha", "http", "1.0.0"),
			},
			want: "team-a/alpha",
		},
		{
			name:     "build metadata does not break a tie",
			consumer: checkout,
			dep:      "api=http@*",
			providers: []*registry.Provider{
				prov("team-a", "b", "http", "1.0.0+zzz"),
				prov("team-a", "a", "http", "1.0.0+aaa"),
			},
			want: "team-a/a",
		},
		{
			// A provider of another namespace that exports itself to every
			// namespace, with a higher version, must not capture a plain
			// type selector: the consumer did not ask to look outside.
			name:     "type selector stays in the consumer's namespace",
			consumer: checkout,
			dep:      "api=http@^1",
			providers: []*registry.Provider{
				prov("team-a", "greeter", "http", "1.0.0"),
				prov("attacker", "x", "http", "1.999.0", scope(registry.Scope{Namespaces: []string{"*"}})),
			},
			want: "team-a/greeter",
		},
		{
			name:     "type selector in a named namespace",
			consumer: checkout,
			dep:      "api=team-b/http@*",
			providers: []*registry.Provider{
				prov("team-a", "own", "http", "2.0.0"),
				prov("team-b", "listed", "http", "1.0.0", scope(registry.Scope{Namespaces: []string{"team-a"}})),
				prov("team-c", "other", "http", "3.0.0", scope(registry.Scope{Namespaces: []string{"*"}})),
			},
			want: "team-b/listed",
		},
		{
			name:     "version beats namespace",
			consumer: checkout,
			dep:      "api=*/http@*",
			providers: []*registry.Provider{
				prov("team-a", "own", "http", "1.0.0"),
				prov("team-b", "newer", "http", "1.0.1"),
			},
			want: "team-b/newer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep, err := registry.ParseDependency(tt.dep)
			if err != nil {
				t.Fatalf("ParseDependency(%q) error = %v", tt.dep, err)
			}
			// The answer must not depend on the order of the providers.
			for _, order := range []string{"given", "reversed"} {
				providers := slices.Clone(tt.providers)
				if order == "reversed" {
					slices.Reverse(providers)
				}
				got, err := registry.Resolve(tt.consumer, dep, providers)
				if err != nil {
					t.Fatalf("Resolve(%s, %s) [%s order] error = %v, want %s", tt.consumer.Name, tt.dep, order, err, tt.want)
				}
				if got.Key() != tt.want {
					t.Errorf("Resolve(%s, %s) [%s order] = %s, want %s", tt.consumer.Name, tt.dep, order, got.Key(), tt.want)
				}
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name       string
		consumer   registry.Consumer
		dep        string
		providers  []*registry.Provider
		wantReason string // part of ResolveError.Reason
	}{
		{
			name:       "no providers at all",
			consumer:   checkout,
			dep:        "db=postgresql@^15",
			wantReason: "no provider has type postgresql",
		},
		{
			name:     "name only in another namespace",
			consumer: checkout,
			dep:      "greeter=greeter",
			providers: []*registry.Provider{
				prov("default", "greeter", "http", "1.0.0"),
			},
			wantReason: "no provider named greeter in namespace team-a",
		},
		{
			name:     "name in a named namespace that lacks it",
			consumer: checkout,
			dep:      "greeter=team-b/greeter",
			providers: []*registry.Provider{
				prov("team-a", "greeter", "http", "1.0.0"),
			},
			wantReason: "no provider named greeter in namespace team-b",
		},
		{
			name:     "named provider out of scope",
			consumer: checkout,
			dep:      "greeter=team-b/greeter",
			providers: []*registry.Provider{
				prov("team-b", "greeter", "http", "1.0.0", scope(registry.Scope{})),
			},
			wantReason: "provider team-b/greeter does not admit consumer team-a/checkout",
		},
		{
			name:     "named provider not ready",
			consumer: checkout,
			dep:      "greeter=greeter",
			providers: []*registry.Provider{
				prov("team-a", "greeter", "http", "1.0.0", notReady),
			},
			wantReason: "provider team-a/greeter has no ready endpoint",
		},
		{
			name:     "no provider of the type",
			consumer: checkout,
			dep:      "queue=kafka@*",
			providers: []*registry.Provider{
				prov("team-a", "nats", "nats", "2.0.0"),
			},
			wantReason: "no provider has type kafka",
		},
		{
			name:     "only other namespaces have the type",
			consumer: checkout,
			dep:      "api=http@^1",
			providers: []*registry.Provider{
				prov("attacker", "x", "http", "1.999.0", scope(registry.Scope{Namespaces: []string{"*"}})),
			},
			wantReason: "1 provider(s) of type http, none in namespace team-a (a type selector looks only in the consumer's namespace: write */http@^1",
		},
		{
			name:     "none in the named namespace",
			consumer: checkout,
			dep:      "api=team-b/http@^1",
			providers: []*registry.Provider{
				prov("team-c", "x", "http", "1.0.0", scope(registry.Scope{Namespaces: []string{"*"}})),
			},
			wantReason: "1 provider(s) of type http, none in namespace team-b",
		},
		{
			name:     "no version in range",
			consumer: checkout,
			dep:      "db=postgresql@^16",
			providers: []*registry.Provider{
				prov("team-a", "pg15", "postgresql", "15.0.0"),
				prov("team-a", "pg16rc", "postgresql", "16.0.0-rc.1"),
			},
			wantReason: "2 provider(s) of type postgresql, none with a version in ^16",
		},
		{
			name:     "no labels",
			consumer: checkout,
			dep:      "db=postgresql@*,tier=gold,region=eu",
			providers: []*registry.Provider{
				prov("team-a", "pg", "postgresql", "15.0.0", labels("tier", "gold")),
			},
			wantReason: "1 provider(s) of type postgresql in range *, none with labels region=eu,tier=gold",
		},
		{
			name:     "none in scope",
			consumer: checkout,
			dep:      "db=*/postgresql@*",
			providers: []*registry.Provider{
				prov("team-b", "pg", "postgresql", "15.0.0", scope(registry.Scope{})),
				prov("team-a", "pg", "postgresql", "15.0.0", scope(registry.Scope{ServiceAccounts: []string{"other"}})),
			},
			wantReason: "2 matching provider(s), none whose scope admits this consumer (namespace team-a)",
		},
		{
			name:     "none ready",
			consumer: checkout,
			dep:      "db=postgresql@*",
			providers: []*registry.Provider{
				prov("team-a", "pg", "postgresql", "15.0.0", notReady),
				prov("team-a", "pg2", "postgresql", "15.0.0", noEndpoints),
			},
			wantReason: "2 matching provider(s) in scope, none with a ready endpoint",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep, err := registry.ParseDependency(tt.dep)
			if err != nil {
				t.Fatalf("ParseDependency(%q) error = %v", tt.dep, err)
			}
			got, err := registry.Resolve(tt.consumer, dep, tt.providers)
			if err == nil {
				t.Fatalf("Resolve(%s, %s) = %s, want an error saying %q", tt.consumer.Name, tt.dep, got.Key(), tt.wantReason)
			}
			if !errors.Is(err, registry.ErrUnresolved) {
				t.Errorf("Resolve(%s, %s) error = %v, want it to wrap ErrUnresolved", tt.consumer.Name, tt.dep, err)
			}
			var re *registry.ResolveError
			if !errors.As(err, &re) {
				t.Fatalf("Resolve(%s, %s) error = %v, want a *ResolveError", tt.consumer.Name, tt.dep, err)
			}
			alias, _, _ := strings.Cut(tt.dep, "=")
			wantSel := dep.Selector.String()
			if diff := cmp.Diff(registry.ResolveError{Dependency: alias, Selector: wantSel, Reason: re.Reason}, *re); diff != "" {
				t.Errorf("Resolve(%s, %s) error fields mismatch (-want +got):\n%s", tt.consumer.Name, tt.dep, diff)
			}
			if !strings.Contains(re.Reason, tt.wantReason) {
				t.Errorf("Resolve(%s, %s) reason = %q, want %q", tt.consumer.Name, tt.dep, re.Reason, tt.wantReason)
			}
			msg := err.Error()
			for _, part := range []string{`"` + alias + `"`, wantSel, tt.wantReason} {
				if !strings.Contains(msg, part) {
					t.Errorf("Resolve(%s, %s) error = %q, want it to name %s", tt.consumer.Name, tt.dep, msg, part)
				}
			}
		})
	}
}

func TestNewBinding(t *testing.T) {
	p := prov("team-a", "db", "postgresql", "15.0.0", notReady)
	p.Endpoints = append(p.Endpoints, registry.Endpoint{URL: "postgres://db:5432/app", Ready: true})
	p.Config = map[string]string{"database": "app"}
	p.Secret = map[string]string{"password": "s3cret"}
	dep, err := registry.ParseDependency("db=postgres@^15")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		withSecret bool
		want       registry.Binding
	}{
		{
			name: "without secret",
			want: registry.Binding{
				Name: "db", Provider: "db", Namespace: "team-a", Type: "postgresql", Version: "15.0.0",
				Endpoints: []registry.Endpoint{{URL: "postgres://db:5432/app", Ready: true}},
				Config:    map[string]string{"database": "app"},
				Selector:  "postgresql@^15",
			},
		},
		{
			name:       "with secret",
			withSecret: true,
			want: registry.Binding{
				Name: "db", Provider: "db", Namespace: "team-a", Type: "postgresql", Version: "15.0.0",
				Endpoints: []registry.Endpoint{{URL: "postgres://db:5432/app", Ready: true}},
				Config:    map[string]string{"database": "app"},
				Secret:    map[string]string{"password": "s3cret"},
				Selector:  "postgresql@^15",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := registry.NewBinding(dep, p, tt.withSecret)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NewBinding(%s, withSecret=%t) mismatch (-want +got):\n%s", p.Key(), tt.withSecret, diff)
			}
		})
	}
}

func TestAdmits(t *testing.T) {
	tests := []struct {
		name     string
		provider *registry.Provider
		consumer registry.Consumer
		want     bool
	}{
		{name: "own namespace", provider: prov("team-a", "p", "http", "", scope(registry.Scope{})), consumer: checkout, want: true},
		{name: "other namespace", provider: prov("team-b", "p", "http", "", scope(registry.Scope{})), consumer: checkout, want: false},
		{name: "default consumer", provider: prov("default", "p", "http", "", scope(registry.Scope{})), consumer: registry.Consumer{Name: "fn"}, want: true},
		{name: "wildcard", provider: prov("team-b", "p", "http", "", scope(registry.Scope{Namespaces: []string{"*"}})), consumer: checkout, want: true},
		{name: "listed namespace excludes own", provider: prov("team-a", "p", "http", "", scope(registry.Scope{Namespaces: []string{"team-b"}})), consumer: checkout, want: false},
		{name: "service account without one", provider: prov("team-a", "p", "http", "", scope(registry.Scope{ServiceAccounts: []string{"sa"}})), consumer: registry.Consumer{Namespace: "team-a", Name: "fn"}, want: false},
		{name: "workload label missing", provider: prov("team-a", "p", "http", "", scope(registry.Scope{WorkloadLabels: map[string]string{"x": ""}})), consumer: checkout, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := registry.Admits(tt.provider, tt.consumer); got != tt.want {
				t.Errorf("Admits(%s, %s/%s) = %t, want %t", tt.provider.Key(), tt.consumer.Namespace, tt.consumer.Name, got, tt.want)
			}
		})
	}
}
