package registry_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ddi.dev/ddi/internal/registry"
)

// cmpSelector compares selectors, ranges by their written form.
var cmpSelector = cmp.Options{
	cmp.Comparer(func(a, b registry.Range) bool { return a.String() == b.String() }),
	cmpopts.EquateEmpty(),
}

func mustRange(t *testing.T, s string) registry.Range {
	t.Helper()
	r, err := registry.ParseRange(s)
	if err != nil {
		t.Fatalf("ParseRange(%q) error = %v", s, err)
	}
	return r
}

func TestParseSelector(t *testing.T) {
	tests := []struct {
		in         string
		want       registry.Selector
		wantString string
	}{
		{
			in:         "payments",
			want:       registry.Selector{Provider: "payments"},
			wantString: "payments",
		},
		{
			in:         "  payments  ",
			want:       registry.Selector{Provider: "payments"},
			wantString: "payments",
		},
		{
			in:         "team-a/payments",
			want:       registry.Selector{Namespace: "team-a", Provider: "payments"},
			wantString: "team-a/payments",
		},
		{
			in:         "postgresql@^15",
			want:       registry.Selector{Type: "postgresql", Range: mustRange(t, "^15")},
			wantString: "postgresql@^15",
		},
		{
			in:         "shared/postgresql@^15",
			want:       registry.Selector{Namespace: "shared", Type: "postgresql", Range: mustRange(t, "^15")},
			wantString: "shared/postgresql@^15",
		},
		{
			in:         "*/http@^1,tier=gold",
			want:       registry.Selector{Namespace: "*", Type: "http", Range: mustRange(t, "^1"), Labels: map[string]string{"tier": "gold"}},
			wantString: "*/http@^1,tier=gold",
		},
		{
			in:         "postgres@^15",
			want:       registry.Selector{Type: "postgresql", Range: mustRange(t, "^15")},
			wantString: "postgresql@^15",
		},
		{
			in:         "Redis@*",
			want:       registry.Selector{Type: "redis", Range: mustRange(t, "*")},
			wantString: "redis@*",
		},
		{
			in:         "http@>=1.2 <2",
			want:       registry.Selector{Type: "http", Range: mustRange(t, ">=1.2 <2")},
			wantString: "http@>=1.2 <2",
		},
		{
			in:         "http@^1 || ^2",
			want:       registry.Selector{Type: "http", Range: mustRange(t, "^1 || ^2")},
			wantString: "http@^1 || ^2",
		},
		{
			in: "http@~1.4.0,tier=gold,region=eu",
			want: registry.Selector{
				Type:   "http",
				Range:  mustRange(t, "~1.4.0"),
				Labels: map[string]string{"tier": "gold", "region": "eu"},
			},
			wantString: "http@~1.4.0,region=eu,tier=gold", // labels sorted
		},
		{
			in: "kafka@*,example.com/team=",
			want: registry.Selector{
				Type:   "kafka",
				Range:  mustRange(t, "*"),
				Labels: map[string]string{"example.com/team": ""},
			},
			wantString: "kafka@*,example.com/team=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := registry.ParseSelector(tt.in)
			if err != nil {
				t.Fatalf("ParseSelector(%q) error = %v, want nil", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpSelector); diff != "" {
				t.Errorf("ParseSelector(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			s := got.String()
			if s != tt.wantString {
				t.Errorf("ParseSelector(%q).String() = %q, want %q", tt.in, s, tt.wantString)
			}
			again, err := registry.ParseSelector(s)
			if err != nil {
				t.Fatalf("ParseSelector(%q) (the String form) error = %v, want nil", s, err)
			}
			if diff := cmp.Diff(got, again, cmpSelector); diff != "" {
				t.Errorf("ParseSelector(String()) round trip of %q mismatch (-first +second):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseSelectorErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantMsg string // a part of the message that helps the user
	}{
		{name: "empty", in: "", wantMsg: "empty selector"},
		{name: "blank", in: "   ", wantMsg: "empty selector"},
		{name: "upper-case name", in: "Payments", wantMsg: "selector provider name"},
		{name: "name with underscore", in: "pay_ments", wantMsg: "DNS-1123"},
		{name: "empty namespace", in: "/payments", wantMsg: "selector namespace"},
		{name: "bad namespace", in: "Team/payments", wantMsg: "selector namespace"},
		{name: "empty name after namespace", in: "team-a/", wantMsg: "selector provider name"},
		{name: "two slashes", in: "a/b/c", wantMsg: "selector provider name"},
		{name: "labels without type", in: "payments,tier=gold", wantMsg: "need a type and range"},
		{name: "wildcard namespace for a name", in: "*/payments", wantMsg: "selector namespace"},
		{name: "bad namespace for a type", in: "Team/http@^1", wantMsg: "selector namespace"},
		{name: "empty namespace for a type", in: "/http@^1", wantMsg: "selector namespace"},
		{name: "empty type", in: "@^1", wantMsg: "type"},
		{name: "bad type", in: "my_db@^1", wantMsg: "type"},
		{name: "empty range", in: "http@", wantMsg: "empty version range"},
		{name: "empty range before labels", in: "http@,tier=gold", wantMsg: "empty version range"},
		{name: "bad range", in: "http@^x.1", wantMsg: "http@^x.1"},
		{name: "label without value", in: "http@*,tier", wantMsg: "KEY=VALUE"},
		{name: "label without key", in: "http@*,=gold", wantMsg: "KEY=VALUE"},
		{name: "trailing comma", in: "http@*,tier=gold,", wantMsg: "KEY=VALUE"},
		{name: "bad label value", in: "http@*,tier=gold!", wantMsg: "label value"},
		{name: "bad label key", in: "http@*,-tier=gold", wantMsg: "label key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := registry.ParseSelector(tt.in)
			if err == nil {
				t.Fatalf("ParseSelector(%q) = %v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ParseSelector(%q) error = %q, want it to mention %q", tt.in, err, tt.wantMsg)
			}
		})
	}
}

func TestSelectorJSON(t *testing.T) {
	in := struct {
		Sel registry.Selector `json:"sel"`
	}{}
	if err := json.Unmarshal([]byte(`{"sel":"postgres@^15,tier=gold"}`), &in); err != nil {
		t.Fatalf("Unmarshal() error = %v, want nil", err)
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("Marshal() error = %v, want nil", err)
	}
	if got, want := string(b), `{"sel":"postgresql@^15,tier=gold"}`; got != want {
		t.Errorf("Marshal(Unmarshal(...)) = %s, want %s", got, want)
	}
	for _, bad := range []string{`{"sel":42}`, `{"sel":"http@"}`, `{"sel":{"type":"http"}}`} {
		if err := json.Unmarshal([]byte(bad), &in); err == nil {
			t.Errorf("Unmarshal(%s) error = nil, want an error", bad)
		}
	}
}

func TestParseDependencies(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []registry.Dependency
	}{
		{name: "empty", in: "", want: nil},
		{name: "only separators", in: " ;\n; ", want: nil},
		{
			name: "one",
			in:   "db=postgresql@^15",
			want: []registry.Dependency{{Alias: "db", Selector: registry.Selector{Type: "postgresql", Range: mustRange(t, "^15")}}},
		},
		{
			name: "semicolons and newlines",
			in:   "db=postgres@^15;\n  cache=redis@*,tier=gold\ngreeter=team-a/greeter;",
			want: []registry.Dependency{
				{Alias: "db", Selector: registry.Selector{Type: "postgresql", Range: mustRange(t, "^15")}},
				{Alias: "cache", Selector: registry.Selector{Type: "redis", Range: mustRange(t, "*"), Labels: map[string]string{"tier": "gold"}}},
				{Alias: "greeter", Selector: registry.Selector{Namespace: "team-a", Provider: "greeter"}},
			},
		},
		{
			name: "spaces around the selector",
			in:   "db= postgresql@^15 ",
			want: []registry.Dependency{{Alias: "db", Selector: registry.Selector{Type: "postgresql", Range: mustRange(t, "^15")}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := registry.ParseDependencies(tt.in)
			if err != nil {
				t.Fatalf("ParseDependencies(%q) error = %v, want nil", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpSelector); diff != "" {
				t.Errorf("ParseDependencies(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			again, err := registry.ParseDependencies(registry.FormatDependencies(got))
			if err != nil {
				t.Fatalf("ParseDependencies(FormatDependencies(...)) error = %v, want nil", err)
			}
			if diff := cmp.Diff(got, again, cmpSelector); diff != "" {
				t.Errorf("FormatDependencies round trip mismatch (-first +second):\n%s", diff)
			}
		})
	}
}

func TestParseDependenciesErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantMsg string
	}{
		{name: "no equals", in: "db", wantMsg: "ALIAS=SELECTOR"},
		{name: "empty alias", in: "=postgresql@^15", wantMsg: "dependency alias"},
		{name: "bad alias", in: "DB=postgresql@^15", wantMsg: "dependency alias"},
		{name: "empty selector", in: "db=", wantMsg: `dependency "db"`},
		{name: "bad selector", in: "db=postgresql@", wantMsg: `dependency "db"`},
		{name: "bad second entry", in: "db=postgresql@^15;cache=redis@^x", wantMsg: `dependency "cache"`},
		{name: "duplicate alias", in: "db=postgresql@^15;db=mysql@*", wantMsg: `"db" is declared twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := registry.ParseDependencies(tt.in)
			if err == nil {
				t.Fatalf("ParseDependencies(%q) = %v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ParseDependencies(%q) error = %q, want it to mention %q", tt.in, err, tt.wantMsg)
			}
		})
	}
}

func TestParseDependencyFieldError(t *testing.T) {
	_, err := registry.ParseDependency("Bad=http@*")
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Field != "dependency alias" {
		t.Errorf("ParseDependency(%q) error = %v, want a *FieldError for %q", "Bad=http@*", err, "dependency alias")
	}
}
