package registry_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ddi.dev/ddi/internal/registry"
)

// The fuzz targets below cover every parser of user input in the registry:
// selectors (`ddi run --dep`, the ddi.dev/dependencies annotation, the
// APIs), version ranges and versions, names, labels and config keys, and
// providers as the REST API decodes them. `go test` runs their seeds and
// testdata/fuzz as regular tests; hack/fuzz.sh fuzzes them.

// selectorSeeds are selectors from the tests and docs, valid and not.
var selectorSeeds = []string{
	"payments", "  payments  ", "team-a/payments", "postgresql@^15", "shared/postgresql@^15",
	"*/http@^1,tier=gold", "postgres@^15", "Redis@*", "http@>=1.2 <2", "http@^1 || ^2",
	"http@~1.4.0,tier=gold,region=eu", "kafka@*,example.com/team=", "db=postgresql@>=15.1 <16,tier=gold",
	"http@^1,ddi.dev/pin=api", "http@1.0.0+build,k=v", "http@>=1.0.0-rc.1 <2.0.0-0",
	"", "Payments", "pay_ments", "/payments", "a/b/c", "payments,tier=gold", "*/payments",
	"@^1", "http@", "http@,tier=gold", "http@^x.1", "http@*,tier", "http@*,=gold", "http@*,tier=gold,",
	"http@*,tier=gold!", "http@*,-tier=gold", "http@18446744073709551615.0.0", "http@^0.0", "http@1.x.x",
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range selectorSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := registry.ParseSelector(s)
		if err != nil {
			return
		}
		checkSelector(t, s, sel)
		out := sel.String()
		again, err := registry.ParseSelector(out)
		if err != nil {
			t.Fatalf("ParseSelector(%q).String() = %q, which does not parse: %v", s, out, err)
		}
		if diff := cmp.Diff(sel, again, cmpSelector); diff != "" {
			t.Fatalf("ParseSelector(String()) of %q changed the selector (-first +second):\n%s", s, diff)
		}
		if again.String() != out {
			t.Fatalf("String() is not stable: %q, then %q", out, again.String())
		}
		// The JSON form is the string form.
		b, err := json.Marshal(sel)
		if err != nil {
			t.Fatalf("Marshal(%q) error = %v", out, err)
		}
		var decoded registry.Selector
		if err := json.Unmarshal(b, &decoded); err != nil {
			t.Fatalf("Unmarshal(Marshal(%q)) = %s, error %v", out, b, err)
		}
		if diff := cmp.Diff(sel, decoded, cmpSelector); diff != "" {
			t.Fatalf("JSON round trip of %q changed the selector (-want +got):\n%s", out, diff)
		}
	})
}

// checkSelector checks what every parsed selector promises.
func checkSelector(t *testing.T, in string, sel registry.Selector) {
	t.Helper()
	switch {
	case sel.Provider != "" && sel.Type != "":
		t.Fatalf("ParseSelector(%q) = %+v: both a provider and a type", in, sel)
	case sel.Provider != "":
		if err := registry.ValidateName("provider", sel.Provider); err != nil {
			t.Fatalf("ParseSelector(%q) provider: %v", in, err)
		}
		if sel.Namespace != "" {
			if err := registry.ValidateName("namespace", sel.Namespace); err != nil {
				t.Fatalf("ParseSelector(%q) namespace: %v", in, err)
			}
		}
		if len(sel.Labels) > 0 {
			t.Fatalf("ParseSelector(%q) = %+v: labels on a provider selector", in, sel)
		}
	default:
		if err := registry.ValidateType(sel.Type); err != nil {
			t.Fatalf("ParseSelector(%q) type: %v", in, err)
		}
		if sel.Type != registry.CanonicalType(sel.Type) {
			t.Fatalf("ParseSelector(%q) type %q is not canonical", in, sel.Type)
		}
		if sel.Namespace != "" && sel.Namespace != registry.AnyNamespace {
			if err := registry.ValidateName("namespace", sel.Namespace); err != nil {
				t.Fatalf("ParseSelector(%q) namespace: %v", in, err)
			}
		}
		for k, v := range sel.Labels {
			if err := registry.ValidateLabel(k, v); err != nil {
				t.Fatalf("ParseSelector(%q) label: %v", in, err)
			}
		}
		if strings.Contains(sel.Range.String(), ",") {
			t.Fatalf("ParseSelector(%q) range %q holds a comma", in, sel.Range.String())
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"", "*", "x", "1.x", "1.2.x", "1", "1.2", "1.2.3", "=1.2.3", "v1.2.3", "^1.2.3", "^1.2", "^0.3", "^0.0.3", "^0.0",
		"~1.2.3", "~1.2", "~1", ">=1.2", ">1.2", "<2", "<=2.1.0", ">=1.2 <2", "^1 || ^2", ">=15.1 <16",
		">=1.0.0-rc.1 <2", "1.0.0-rc.1", "^1.0.0-beta", "1.0.0+build", "||", "^1 ||", ">=", "^x.1", "<*", ">*",
		"18446744073709551615", "18446744073709551614.18446744073709551614.18446744073709551614", "^0.0.18446744073709551614",
	} {
		f.Add(s, "1.2.3")
	}
	f.Add("^1.2", "1.5.0-beta")
	f.Add("~1.4.0", "1.4.9+build.7")
	f.Fuzz(func(t *testing.T, s, version string) {
		r, err := registry.ParseRange(s)
		if err != nil {
			return
		}
		out := r.String()
		again, err := registry.ParseRange(out)
		if err != nil {
			t.Fatalf("ParseRange(%q).String() = %q, which does not parse: %v", s, out, err)
		}
		if again.String() != out {
			t.Fatalf("String() is not stable: %q, then %q", out, again.String())
		}
		v, err := registry.ParseVersion(version)
		if err != nil {
			return
		}
		got := r.Match(v)
		if again.Match(v) != got {
			t.Fatalf("ParseRange(%q).Match(%s) = %t, but the re-parsed %q says %t", s, v, got, out, !got)
		}
		// Build metadata never counts.
		bare := v
		bare.Build = ""
		if r.Match(bare) != got {
			t.Fatalf("ParseRange(%q).Match: %s and %s differ only in build metadata but match differently", s, v, bare)
		}
		// A pre-release matches only a range that names a pre-release of
		// the same MAJOR.MINOR.PATCH.
		if got && len(v.Pre) > 0 && !strings.Contains(out, "-") {
			t.Fatalf("ParseRange(%q) matches the pre-release %s though it names no pre-release", s, v)
		}
	})
}

func FuzzParseVersion(f *testing.F) {
	versions := []string{
		"1.4.2", "v1.4.2", "0.0.0", "10.20.30", "2.0.0-rc.1", "1.0.0-alpha-beta.0.x-y", "1.0.0+build.5",
		"1.0.0-beta+exp.sha.5114f85", "1.0.0-0", "1.0.0-9", "1.0.0-10", "1.0.0-alpha.1", "1.0.0-alpha.beta",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0-18446744073709551616", "1.0.0--", "1.2.3-01", "99999999999999999999.0.0",
		"", "v", "1.2", "1.2.x", "1.2.3.4", "1.2.3-", "1.2.3+",
	}
	for i, a := range versions {
		f.Add(a, versions[(i+1)%len(versions)], versions[(i+5)%len(versions)])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		var vs []registry.Version
		for _, s := range []string{a, b, c} {
			v, err := registry.ParseVersion(s)
			if err != nil {
				continue
			}
			again, err := registry.ParseVersion(v.String())
			if err != nil {
				t.Fatalf("ParseVersion(%q).String() = %q, which does not parse: %v", s, v.String(), err)
			}
			if diff := cmp.Diff(v, again, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("ParseVersion(String()) of %q changed the version (-first +second):\n%s", s, diff)
			}
			if v.Compare(v) != 0 {
				t.Fatalf("Compare(%s, %s) = %d, want 0", v, v, v.Compare(v))
			}
			vs = append(vs, v)
		}
		precedence := func(v registry.Version) string { // the String without build metadata
			s, _, _ := strings.Cut(v.String(), "+")
			return s
		}
		for _, x := range vs {
			for _, y := range vs {
				xy, yx := x.Compare(y), y.Compare(x)
				if xy != -yx || xy < -1 || xy > 1 {
					t.Fatalf("Compare(%s, %s) = %d but Compare(%s, %s) = %d", x, y, xy, y, x, yx)
				}
				if (xy == 0) != (precedence(x) == precedence(y)) {
					t.Fatalf("Compare(%s, %s) = %d, but they differ in more than build metadata: %t", x, y, xy, precedence(x) != precedence(y))
				}
				for _, z := range vs {
					if xy <= 0 && y.Compare(z) <= 0 && x.Compare(z) > 0 {
						t.Fatalf("Compare is not transitive: %s <= %s <= %s but %s > %s", x, y, z, x, z)
					}
				}
			}
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"payments", "team-a", "a", "0", strings.Repeat("a", 63), strings.Repeat("a", 64), "Payments",
		"orders.db", "a/b", "../x", "orders-", "-orders", "", "tier", "example.com/team", "ddi.dev/pin", "gold",
		"ssl.mode", "..data", ".ddi-binding", "a..b", "type", "uri", "café"} {
		f.Add(s, "gold")
	}
	f.Fuzz(func(t *testing.T, s, value string) {
		if err := registry.ValidateName("name", s); err == nil {
			if len(s) > 63 || strings.ContainsAny(s, "/.@,=; \t\n") {
				t.Fatalf("ValidateName(%q) = nil for a string that is no DNS-1123 label", s)
			}
			// A valid name stays valid wherever names are written.
			for _, sel := range []string{s, s + "/" + s} {
				got, err := registry.ParseSelector(sel)
				if err != nil || got.Provider != s {
					t.Fatalf("ParseSelector(%q) = %+v, %v; want the provider %q", sel, got, err, s)
				}
			}
			if err := registry.ValidateType(registry.CanonicalType(s)); err != nil {
				t.Fatalf("the valid name %q is no valid type once canonical: %v", s, err)
			}
			if deps, err := registry.ParseDependencies(s + "=" + s); err != nil || len(deps) != 1 || deps[0].Alias != s {
				t.Fatalf("ParseDependencies(%q) = %+v, %v; want the alias %q", s+"="+s, deps, err, s)
			}
			if err := registry.ValidateConfigKey("key", s); err != nil {
				t.Fatalf("the valid name %q is no valid config key: %v", s, err)
			}
		}
		if err := registry.ValidateLabel(s, value); err == nil {
			// A valid label can always be selected on.
			sel := "http@*," + s + "=" + value
			got, err := registry.ParseSelector(sel)
			if err != nil || got.Labels[s] != value || len(got.Labels) != 1 {
				t.Fatalf("ParseSelector(%q) = %+v, %v; want the label %q=%q", sel, got, err, s, value)
			}
		}
		if err := registry.ValidateConfigKey("key", s); err == nil {
			// A config key becomes a file name in a binding directory.
			if !filepath.IsLocal(s) || filepath.Base(s) != s || strings.HasPrefix(s, ".") || strings.ContainsAny(s, "/\\\x00") {
				t.Fatalf("ValidateConfigKey(%q) = nil for a key that is no plain file name", s)
			}
		}
	})
}

func FuzzParseDependencies(f *testing.F) {
	for _, s := range []string{
		"", " ;\n; ", "db=postgresql@^15", "db=postgres@^15;\n  cache=redis@*,tier=gold\ngreeter=team-a/greeter;",
		"db=postgresql@>=15.1 <16,tier=gold;payments=team-b/payments;cache=redis@*", "greeter=greeter",
		"greeter=ddi-demo/greeter", "db=x;db=y", "=x", "db", "db=", "Db=x", "db = x", "a=b=c", "a=http@*,k=v=w",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		deps, err := registry.ParseDependencies(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, d := range deps {
			if err := registry.ValidateName("alias", d.Alias); err != nil {
				t.Fatalf("ParseDependencies(%q) alias: %v", s, err)
			}
			if seen[d.Alias] {
				t.Fatalf("ParseDependencies(%q) returned the alias %q twice", s, d.Alias)
			}
			seen[d.Alias] = true
			checkSelector(t, s, d.Selector)
		}
		out := registry.FormatDependencies(deps)
		again, err := registry.ParseDependencies(out)
		if err != nil {
			t.Fatalf("FormatDependencies(ParseDependencies(%q)) = %q, which does not parse: %v", s, out, err)
		}
		if diff := cmp.Diff(deps, again, cmpSelector); diff != "" {
			t.Fatalf("ParseDependencies(FormatDependencies()) of %q changed the list (-first +second):\n%s", s, diff)
		}
		// The hello and --dep form: one entry per dependency.
		entries := make([]string, len(deps))
		for i, d := range deps {
			entries[i] = d.Alias + "=" + d.Selector.String()
		}
		list, err := registry.ParseDependencyList(entries)
		if err != nil {
			t.Fatalf("ParseDependencyList(%q) error = %v", entries, err)
		}
		if diff := cmp.Diff(deps, list, cmpSelector); diff != "" {
			t.Fatalf("ParseDependencyList of %q differs from ParseDependencies (-want +got):\n%s", s, diff)
		}
	})
}

func FuzzValidateProvider(f *testing.F) {
	valid, err := json.Marshal(validProvider())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, s := range []string{
		`{"namespace":"default","name":"a","type":"http"}`,
		`{"name":"g1","type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"secret":{"password":"hunter2"}}`,
		`{"name":"db","type":"postgres","version":" v15.4.0 ","endpoints":[{"url":"postgres://u@127.0.0.1:5432/app","ready":true}],"secret":{"username":"app","password":"hunter2"}}`,
		`{"name":"a","type":"http","lease":{"ttl":"-5s"}}`,
		`{"name":"a","type":"http","lease":{"ttl":30}}`,
		`{"name":"a","type":"http","lease":{"ttl":"100000h"}}`,
		`{"name":"a","type":"http","config":{"../../etc/passwd":"x"}}`,
		`{"name":"a","type":"http","secret":{"a/b":"x"}}`,
		`{"name":"a","type":"http","endpoints":[{"url":"localhost"}]}`,
		`{"name":"a","type":"http","endpoints":[{"url":"http://user:pw@host"}]}`,
		`{"name":"a","type":"http","secretRef":{"name":"orders-db.v1","keys":["username"]}}`,
		`{"name":"a","type":"http","scope":{"namespaces":["*","team-b"],"workloadLabels":{"app":"shop"}}}`,
		`{"name":"a","type":"http","labels":{"ddi.dev/pin":"api"},"owner":"sidecar:default/fn@host"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p registry.Provider
		if err := json.Unmarshal(data, &p); err != nil {
			return
		}
		registry.NormalizeProvider(&p)
		if err := registry.ValidateProvider(&p); err != nil {
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("ValidateProvider error %v (%T) does not name a field", err, err)
			}
			return
		}
		// What validates survives the store's JSON encoding and a clone,
		// and validates again.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("Marshal of a valid provider: %v", err)
		}
		var decoded registry.Provider
		if err := json.Unmarshal(b, &decoded); err != nil {
			t.Fatalf("Unmarshal(Marshal(p)) = %s: %v", b, err)
		}
		for what, q := range map[string]registry.Provider{"decoded": decoded, "clone": p.Clone()} {
			if err := registry.ValidateProvider(&q); err != nil {
				t.Fatalf("the %s copy of a valid provider does not validate: %v\n%s", what, err, b)
			}
		}
		if diff := cmp.Diff(p, decoded, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("JSON round trip of a valid provider (-want +got):\n%s", diff)
		}
		// Normalising a valid provider again changes nothing.
		again := p.Clone()
		registry.NormalizeProvider(&again)
		if diff := cmp.Diff(p, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("NormalizeProvider is not idempotent (-once +twice):\n%s", diff)
		}
		// Its binding keeps only ready endpoints and file-safe keys.
		dep := registry.Dependency{Alias: "dep", Selector: registry.Selector{Provider: p.Name}}
		bind := registry.NewBinding(dep, &p, true)
		for _, e := range bind.Endpoints {
			if !e.Ready {
				t.Fatalf("NewBinding kept the endpoint %q that is not ready", e.URL)
			}
		}
		for _, m := range []map[string]string{bind.Config, bind.Secret} {
			for k := range m {
				if err := registry.ValidateConfigKey("key", k); err != nil {
					t.Fatalf("binding key: %v", err)
				}
			}
		}
	})
}
