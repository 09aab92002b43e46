package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

// validProvider returns a provider that passes ValidateProvider, with
// every field set.
func validProvider() registry.Provider {
	return registry.Provider{
		Namespace: "team-a",
		Name:      "orders-db",
		Type:      "postgresql",
		Version:   "15.2.0",
		Labels:    map[string]string{"tier": "gold", "example.com/owner": "shop"},
		Endpoints: []registry.Endpoint{{URL: "postgres://db.team-a:5432/app", Ready: true}},
		Config:    map[string]string{"database": "app", "ssl.mode": "require"},
		Secret:    map[string]string{"username": "app", "password": "s3cret"},
		SecretRef: &registry.SecretRef{Name: "orders-db", Keys: []string{"username", "password"}},
		Scope: registry.Scope{
			Namespaces:      []string{"*", "team-b"},
			ServiceAccounts: []string{"checkout"},
			Workloads:       []string{"checkout"},
			WorkloadLabels:  map[string]string{"app": "shop"},
		},
		Lease: &registry.Lease{TTL: registry.Duration(30 * time.Second)},
	}
}

func manyEntries(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func TestValidateProvider(t *testing.T) {
	tests := []struct {
		name      string
		change    func(p *registry.Provider)
		wantField string // "" for a valid provider
		notInMsg  string // must not appear in the message (secrets)
	}{
		{name: "valid", change: func(p *registry.Provider) {}},
		{name: "minimal", change: func(p *registry.Provider) {
			*p = registry.Provider{Namespace: "default", Name: "a", Type: "http"}
		}},
		{name: "empty namespace", change: func(p *registry.Provider) { p.Namespace = "" }, wantField: "namespace"},
		{name: "upper-case namespace", change: func(p *registry.Provider) { p.Namespace = "Team" }, wantField: "namespace"},
		{name: "empty name", change: func(p *registry.Provider) { p.Name = "" }, wantField: "name"},
		{name: "name with dot", change: func(p *registry.Provider) { p.Name = "orders.db" }, wantField: "name"},
		{name: "name with slash", change: func(p *registry.Provider) { p.Name = "a/b" }, wantField: "name"},
		{name: "name path traversal", change: func(p *registry.Provider) { p.Name = "../x" }, wantField: "name"},
		{name: "name ends with dash", change: func(p *registry.Provider) { p.Name = "orders-" }, wantField: "name"},
		{name: "name too long", change: func(p *registry.Provider) { p.Name = strings.Repeat("a", 64) }, wantField: "name"},
		{name: "name of 63", change: func(p *registry.Provider) { p.Name = strings.Repeat("a", 63) }},
		{name: "no type", change: func(p *registry.Provider) { p.Type = "" }, wantField: "type"},
		{name: "bad type", change: func(p *registry.Provider) { p.Type = "Postgre_SQL" }, wantField: "type"},
		{name: "partial version", change: func(p *registry.Provider) { p.Version = "15" }, wantField: "version"},
		{name: "bad version", change: func(p *registry.Provider) { p.Version = "latest" }, wantField: "version"},
		{name: "pre-release version", change: func(p *registry.Provider) { p.Version = "16.0.0-rc.1" }},
		{name: "bad label key", change: func(p *registry.Provider) { p.Labels = map[string]string{"-tier": "gold"} }, wantField: "label key"},
		{name: "bad label value", change: func(p *registry.Provider) { p.Labels = map[string]string{"tier": "gold silver"} }, wantField: "labels.tier"},
		{name: "long label value", change: func(p *registry.Provider) { p.Labels = map[string]string{"tier": strings.Repeat("g", 64)} }, wantField: "labels.tier"},
		{name: "too many labels", change: func(p *registry.Provider) { p.Labels = manyEntries(registry.MaxMapEntries + 1) }, wantField: "labels"},
		{name: "most labels", change: func(p *registry.Provider) { p.Labels = manyEntries(registry.MaxMapEntries) }},
		{name: "too many endpoints", change: func(p *registry.Provider) {
			p.Endpoints = make([]registry.Endpoint, registry.MaxEndpoints+1)
			for i := range p.Endpoints {
				p.Endpoints[i].URL = fmt.Sprintf("http://10.0.0.%d:80", i)
			}
		}, wantField: "endpoints"},
		{name: "relative URL", change: func(p *registry.Provider) { p.Endpoints[0].URL = "/api" }, wantField: "endpoints[0].url"},
		{name: "URL without scheme", change: func(p *registry.Provider) {
			p.Endpoints = append(p.Endpoints, registry.Endpoint{URL: "localhost:8080"})
		}, wantField: "endpoints[1].url"},
		{name: "URL without host", change: func(p *registry.Provider) { p.Endpoints[0].URL = "http://" }, wantField: "endpoints[0].url"},
		{name: "unparsable URL", change: func(p *registry.Provider) { p.Endpoints[0].URL = "http://db:port/" }, wantField: "endpoints[0].url"},
		{
			name:      "bad URL with credentials",
			change:    func(p *registry.Provider) { p.Endpoints[0].URL = "postgres://app:hunter2@db:port/app" },
			wantField: "endpoints[0].url",
			notInMsg:  "hunter2",
		},
		{
			name:      "bad URL with credentials and no scheme",
			change:    func(p *registry.Provider) { p.Endpoints[0].URL = "app:hunter2@db" },
			wantField: "endpoints[0].url",
			notInMsg:  "hunter2",
		},
		{name: "config key path traversal", change: func(p *registry.Provider) { p.Config = map[string]string{"../x": "v"} }, wantField: "config key"},
		{name: "config key with slash", change: func(p *registry.Provider) { p.Config = map[string]string{"a/b": "v"} }, wantField: "config key"},
		{name: "config key dot-dot inside", change: func(p *registry.Provider) { p.Config = map[string]string{"a..b": "v"} }, wantField: "config key"},
		{name: "config key hidden file", change: func(p *registry.Provider) { p.Config = map[string]string{".env": "v"} }, wantField: "config key"},
		{name: "config key dot", change: func(p *registry.Provider) { p.Config = map[string]string{".": "v"} }, wantField: "config key"},
		{name: "config key empty", change: func(p *registry.Provider) { p.Config = map[string]string{"": "v"} }, wantField: "config key"},
		{name: "config key with space", change: func(p *registry.Provider) { p.Config = map[string]string{"a b": "v"} }, wantField: "config key"},
		{name: "config value too long", change: func(p *registry.Provider) {
			p.Config = map[string]string{"blob": strings.Repeat("x", registry.MaxValueLength+1)}
		}, wantField: "config.blob"},
		{name: "config value at the limit", change: func(p *registry.Provider) {
			p.Config = map[string]string{"blob": strings.Repeat("x", registry.MaxValueLength)}
		}},
		{name: "too many config entries", change: func(p *registry.Provider) { p.Config = manyEntries(registry.MaxMapEntries + 1) }, wantField: "config"},
		{name: "secret key path traversal", change: func(p *registry.Provider) { p.Secret = map[string]string{"../../etc/passwd": "v"} }, wantField: "secret key"},
		{name: "secret key with slash", change: func(p *registry.Provider) { p.Secret = map[string]string{"a/b": "v"} }, wantField: "secret key"},
		{
			name: "secret value too long",
			change: func(p *registry.Provider) {
				p.Secret = map[string]string{"password": strings.Repeat("s", registry.MaxValueLength+1)}
			},
			wantField: "secret.password",
			notInMsg:  "sss",
		},
		{name: "too many secret entries", change: func(p *registry.Provider) { p.Secret = manyEntries(registry.MaxMapEntries + 1) }, wantField: "secret"},
		{name: "bad secretRef name", change: func(p *registry.Provider) { p.SecretRef.Name = "Orders" }, wantField: "secretRef.name"},
		{name: "secretRef key path traversal", change: func(p *registry.Provider) { p.SecretRef.Keys = []string{"username", "../x"} }, wantField: "secretRef.keys[1]"},
		{name: "bad scope namespace", change: func(p *registry.Provider) { p.Scope.Namespaces = []string{"team-a", "Team_B"} }, wantField: "scope.namespaces[1]"},
		{name: "scope namespace wildcard", change: func(p *registry.Provider) { p.Scope.Namespaces = []string{"*"} }},
		{name: "bad scope workload", change: func(p *registry.Provider) { p.Scope.Workloads = []string{"a/b"} }, wantField: "scope.workloads[0]"},
		{name: "bad workload label key", change: func(p *registry.Provider) {
			p.Scope.WorkloadLabels = map[string]string{"app/x/y": "shop"}
		}, wantField: "scope.workloadLabels key"},
		{name: "bad workload label value", change: func(p *registry.Provider) {
			p.Scope.WorkloadLabels = map[string]string{"app": "a shop"}
		}, wantField: "scope.workloadLabels.app"},
		{name: "TTL zero", change: func(p *registry.Provider) { p.Lease.TTL = 0 }, wantField: "ttl"},
		{name: "TTL too short", change: func(p *registry.Provider) { p.Lease.TTL = registry.Duration(500 * time.Millisecond) }, wantField: "ttl"},
		{name: "TTL too long", change: func(p *registry.Provider) { p.Lease.TTL = registry.Duration(25 * time.Hour) }, wantField: "ttl"},
		{name: "TTL at the minimum", change: func(p *registry.Provider) { p.Lease.TTL = registry.Duration(registry.MinLeaseTTL) }},
		{name: "TTL at the maximum", change: func(p *registry.Provider) { p.Lease.TTL = registry.Duration(registry.MaxLeaseTTL) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validProvider()
			tt.change(&p)
			before := p
			err := registry.ValidateProvider(&p)
			if diff := cmp.Diff(before, p); diff != "" {
				t.Errorf("ValidateProvider() modified the provider (-before +after):\n%s", diff)
			}
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("ValidateProvider() = %v, want nil", err)
				}
				return
			}
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ValidateProvider() = %v, want a *FieldError for %q", err, tt.wantField)
			}
			if fe.Field != tt.wantField {
				t.Errorf("ValidateProvider() field = %q, want %q (error %q)", fe.Field, tt.wantField, err)
			}
			if !strings.HasPrefix(err.Error(), tt.wantField+" ") {
				t.Errorf("ValidateProvider() = %q, want it to start with the field %q", err, tt.wantField)
			}
			if tt.notInMsg != "" && strings.Contains(err.Error(), tt.notInMsg) {
				t.Errorf("ValidateProvider() = %q, want %q left out", err, tt.notInMsg)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{in: "a"},
		{in: "payments"},
		{in: "orders-db-2"},
		{in: "0abc"},
		{in: strings.Repeat("x", 63)},
		{in: "", wantErr: true},
		{in: strings.Repeat("x", 64), wantErr: true},
		{in: "-a", wantErr: true},
		{in: "a-", wantErr: true},
		{in: "A", wantErr: true},
		{in: "a.b", wantErr: true},
		{in: "a_b", wantErr: true},
		{in: "a b", wantErr: true},
		{in: "..", wantErr: true},
	}
	for _, tt := range tests {
		err := registry.ValidateName("name", tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ValidateName(%q) = %v, want error %t", tt.in, err, tt.wantErr)
		}
	}
}

func TestValidateTTL(t *testing.T) {
	tests := []struct {
		ttl     time.Duration
		wantErr bool
	}{
		{ttl: registry.MinLeaseTTL},
		{ttl: time.Minute},
		{ttl: registry.MaxLeaseTTL},
		{ttl: 0, wantErr: true},
		{ttl: -time.Second, wantErr: true},
		{ttl: registry.MinLeaseTTL - 1, wantErr: true},
		{ttl: registry.MaxLeaseTTL + 1, wantErr: true},
	}
	for _, tt := range tests {
		err := registry.ValidateTTL(tt.ttl)
		if (err != nil) != tt.wantErr {
			t.Errorf("ValidateTTL(%s) = %v, want error %t", tt.ttl, err, tt.wantErr)
		}
		var fe *registry.FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "ttl") {
			t.Errorf("ValidateTTL(%s) = %v, want a *FieldError for %q", tt.ttl, err, "ttl")
		}
	}
}

func TestCanonicalType(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: "postgres", want: "postgresql"},
		{in: "pg", want: "postgresql"},
		{in: " PostgreSQL ", want: "postgresql"},
		{in: "mongo", want: "mongodb"},
		{in: "rabbitmq", want: "amqp"},
		{in: "Redis", want: "redis"},
		{in: "http", want: "http"},
	}
	for _, tt := range tests {
		if got := registry.CanonicalType(tt.in); got != tt.want {
			t.Errorf("CanonicalType(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeProvider(t *testing.T) {
	p := registry.Provider{Name: "db", Type: "Postgres", Version: " v15.2.0 "}
	registry.NormalizeProvider(&p)
	want := registry.Provider{Namespace: "default", Name: "db", Type: "postgresql", Version: "15.2.0"}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("NormalizeProvider() mismatch (-want +got):\n%s", diff)
	}
	if err := registry.ValidateProvider(&p); err != nil {
		t.Errorf("ValidateProvider(NormalizeProvider(...)) = %v, want nil", err)
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: `"30s"`, want: 30 * time.Second},
		{in: `"5m"`, want: 5 * time.Minute},
		{in: `90`, want: 90 * time.Second},
		{in: `1.5`, want: 1500 * time.Millisecond},
		{in: `"soon"`, wantErr: true},
		{in: `true`, wantErr: true},
	}
	for _, tt := range tests {
		var d registry.Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		if tt.wantErr {
			if err == nil {
				t.Errorf("Unmarshal(%s) = %s, want an error", tt.in, time.Duration(d))
			}
			continue
		}
		if err != nil || time.Duration(d) != tt.want {
			t.Errorf("Unmarshal(%s) = %s, %v, want %s", tt.in, time.Duration(d), err, tt.want)
		}
	}
	b, err := json.Marshal(registry.Duration(90 * time.Second))
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("Marshal(90s) = %s, %v, want %q", b, err, `"1m30s"`)
	}
}

func TestValidateProviderEndpointCredentials(t *testing.T) {
	p := registry.Provider{Namespace: "default", Name: "db", Type: "postgresql",
		Endpoints: []registry.Endpoint{{URL: "postgres://app:hunter2@127.0.0.1:5432/app", Ready: true}}}
	err := registry.ValidateProvider(&p)
	if err == nil || !strings.Contains(err.Error(), "endpoints[0].url") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("ValidateProvider(password in URL) = %v, want an error naming endpoints[0].url without the password", err)
	}
	p.Endpoints[0].URL = "postgres://app@127.0.0.1:5432/app"
	p.SecretRef = &registry.SecretRef{Name: "db.credentials"}
	if err := registry.ValidateProvider(&p); err != nil {
		t.Fatalf("ValidateProvider(user without password, dotted secret name) = %v, want nil", err)
	}
}
