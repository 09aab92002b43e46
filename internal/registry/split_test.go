package registry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

func TestParseSplit(t *testing.T) {
	tests := []struct {
		name, in    string
		wantPrimary string
		wantSplit   string // SelectorString of the result
	}{
		{name: "two providers", in: "greeter=90%greeter-v1,10%greeter-v2", wantPrimary: "greeter-v1", wantSplit: "90%greeter-v1,10%greeter-v2"},
		{name: "the primary is the highest weight, not the first", in: "greeter=10%greeter-v2,90%greeter-v1", wantPrimary: "greeter-v1", wantSplit: "10%greeter-v2,90%greeter-v1"},
		{name: "the first among equals is the primary", in: "greeter=50%b,50%a", wantPrimary: "b", wantSplit: "50%b,50%a"},
		{name: "selectors with labels and ranges", in: "greeter=80%http@^1,tier=gold,20%shared/http@>=2 <3", wantPrimary: "http@^1,tier=gold", wantSplit: "80%http@^1,tier=gold,20%shared/http@>=2 <3"},
		{name: "a zero weight is kept", in: "g=100%a,0%b", wantPrimary: "a", wantSplit: "100%a,0%b"},
		{name: "spaces around weights", in: "g= 70 %a, 30 %b", wantPrimary: "a", wantSplit: "70%a,30%b"},
		{name: "one target at 100 is a plain dependency", in: "g=100%a", wantPrimary: "a", wantSplit: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := registry.ParseDependency(tt.in)
			if err != nil {
				t.Fatalf("ParseDependency(%q) = %v", tt.in, err)
			}
			if got := d.Selector.String(); got != tt.wantPrimary {
				t.Errorf("ParseDependency(%q).Selector = %q, want the primary %q", tt.in, got, tt.wantPrimary)
			}
			if got := d.SelectorString(); got != tt.wantSplit {
				t.Errorf("ParseDependency(%q).SelectorString() = %q, want %q", tt.in, got, tt.wantSplit)
			}
			// The formatted form parses back to the same dependency.
			again, err := registry.ParseDependency(d.Alias + "=" + d.SelectorString())
			if err != nil {
				t.Fatalf("ParseDependency(formatted %q) = %v", d.SelectorString(), err)
			}
			if again.SelectorString() != d.SelectorString() || again.Selector.String() != d.Selector.String() {
				t.Errorf("round trip of %q = %q", tt.in, again.SelectorString())
			}
		})
	}
}

func TestParseSplitErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // substrings of the error
	}{
		{name: "weights under 100", in: "g=80%a,10%b", want: []string{"add up to 90, not 100"}},
		{name: "weights over 100", in: "g=90%a,20%b", want: []string{"add up to 110, not 100"}},
		{name: "negative weight", in: "g=110%a,-10%b", want: []string{"target 1 weight", "110 is not a whole percentage"}},
		{name: "negative weight alone", in: "g=100%a,-0%b,-5%c", want: []string{"target 3 weight", "-5 is not a whole percentage"}},
		{name: "fraction", in: "g=90.5%a,9.5%b", want: []string{"target 1 weight", `"90.5" is not a whole percentage`}},
		{name: "plus sign", in: "g=+90%a,10%b", want: []string{"target 1 weight"}},
		{name: "missing selector", in: "g=90%a,10%", want: []string{"target 2 selector", "is missing"}},
		{name: "missing weight on the first target", in: "g=a,10%b", want: []string{"target 1 weight", "is missing"}},
		{name: "missing weight value", in: "g=%a", want: []string{"target 1 weight", `"" is not a whole percentage`}},
		{name: "duplicate targets", in: "g=50%a,50%a", want: []string{"target 2 selector", `"a" repeats target 1`}},
		{name: "duplicate type selectors with labels in another order", in: "g=50%http@^1,a=1,b=2,50%http@^1,b=2,a=1", want: []string{"target 2 selector", "repeats target 1"}},
		{name: "bad selector", in: "g=50%a,50%Not_A_Name", want: []string{"target 2 selector"}},
		{name: "too many targets", in: "g=10%a,10%b,10%c,10%d,60%e", want: []string{"more than 4 targets"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := registry.ParseDependency(tt.in)
			if err == nil {
				t.Fatalf("ParseDependency(%q) = %+v, want an error", tt.in, d)
			}
			var se *registry.SplitError
			if !errors.As(err, &se) {
				t.Errorf("ParseDependency(%q) = %v, want a *SplitError", tt.in, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseDependency(%q) = %q, want it to say %q", tt.in, err, w)
				}
			}
			if !strings.Contains(err.Error(), `dependency "g"`) {
				t.Errorf("ParseDependency(%q) = %q, want it to name the dependency", tt.in, err)
			}
		})
	}
}

func TestNewSplitErrors(t *testing.T) {
	a, b := registry.Selector{Provider: "a"}, registry.Selector{Provider: "b"}
	tests := []struct {
		name    string
		targets []registry.Target
		want    registry.SplitError
	}{
		{name: "no target", want: registry.SplitError{Index: -1}},
		{name: "sum", targets: []registry.Target{{Selector: a, Weight: 50}, {Selector: b, Weight: 40}}, want: registry.SplitError{Index: -1}},
		{name: "negative", targets: []registry.Target{{Selector: a, Weight: 110}, {Selector: b, Weight: -10}}, want: registry.SplitError{Index: 0, Field: "weight"}},
		{name: "negative second", targets: []registry.Target{{Selector: a, Weight: 100}, {Selector: b, Weight: -10}}, want: registry.SplitError{Index: 1, Field: "weight"}},
		{name: "missing selector", targets: []registry.Target{{Selector: a, Weight: 50}, {Weight: 50}}, want: registry.SplitError{Index: 1, Field: "selector"}},
		{name: "duplicate", targets: []registry.Target{{Selector: a, Weight: 50}, {Selector: a, Weight: 50}}, want: registry.SplitError{Index: 1, Field: "selector"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := registry.NewSplit("g", tt.targets)
			var se *registry.SplitError
			if !errors.As(err, &se) {
				t.Fatalf("NewSplit(%v) = %v, want a *SplitError", tt.targets, err)
			}
			if se.Index != tt.want.Index || se.Field != tt.want.Field {
				t.Errorf("NewSplit(%v) = target %d field %q (%v), want target %d field %q", tt.targets, se.Index, se.Field, err, tt.want.Index, tt.want.Field)
			}
		})
	}
}

func TestShareOut(t *testing.T) {
	tests := []struct {
		weights, want []int
	}{
		{weights: []int{90, 10}, want: []int{90, 10}},
		{weights: []int{90, 0}, want: []int{100, 0}},
		{weights: []int{0, 10, 10, 10}, want: []int{0, 34, 33, 33}},
		{weights: []int{45, 45, 0}, want: []int{50, 50, 0}},
		{weights: []int{0, 0}, want: []int{0, 0}},
		{weights: []int{1, 0, 2}, want: []int{33, 0, 67}},
	}
	for _, tt := range tests {
		if got := registry.ShareOut(tt.weights); !cmp.Equal(got, tt.want) {
			t.Errorf("ShareOut(%v) = %v, want %v", tt.weights, got, tt.want)
		}
	}
}

// TestResolveSplit resolves splits over real providers: each target by the
// ordinary rules, an unresolved target's weight shared among the others,
// the primary filling the binding's own fields.
func TestResolveSplit(t *testing.T) {
	v1 := prov("team-a", "greeter-v1", "http", "1.0.0", func(p *registry.Provider) { p.Secret = map[string]string{"token": "one"} })
	v2 := prov("team-a", "greeter-v2", "http", "2.0.0", func(p *registry.Provider) { p.Secret = map[string]string{"token": "two"} })
	v3 := prov("team-a", "greeter-v3", "http", "3.0.0")
	down := prov("team-a", "greeter-down", "http", "1.5.0", notReady)
	all := []*registry.Provider{v1, v2, v3, down}
	resolve := func(d registry.Dependency) (*registry.Provider, error) { return registry.Resolve(checkout, d, all) }
	type target struct {
		Provider   string
		Weight     int
		Share      int
		Primary    bool
		Unresolved bool
	}
	tests := []struct {
		name         string
		dep          string
		wantProvider string
		want         []target
		wantErr      string
	}{
		{name: "90/10", dep: "g=90%greeter-v1,10%greeter-v2", wantProvider: "greeter-v1",
			want: []target{{"greeter-v1", 90, 90, true, false}, {"greeter-v2", 10, 10, false, false}}},
		{name: "type selectors", dep: "g=75%http@^1,25%http@^2", wantProvider: "greeter-v1",
			want: []target{{"greeter-v1", 75, 75, true, false}, {"greeter-v2", 25, 25, false, false}}},
		{name: "an unresolved canary gives its share to the rest", dep: "g=90%greeter-v1,10%greeter-v9", wantProvider: "greeter-v1",
			want: []target{{"greeter-v1", 90, 100, true, false}, {"", 10, 0, false, true}}},
		{name: "an unready primary passes the primary role on", dep: "g=60%greeter-down,30%greeter-v2,10%greeter-v3", wantProvider: "greeter-v2",
			want: []target{{"", 60, 0, false, true}, {"greeter-v2", 30, 75, true, false}, {"greeter-v3", 10, 25, false, false}}},
		{name: "a zero weight gets nothing", dep: "g=100%greeter-v1,0%greeter-v2", wantProvider: "greeter-v1",
			want: []target{{"greeter-v1", 100, 100, true, false}, {"greeter-v2", 0, 0, false, false}}},
		{name: "nothing of positive weight resolved", dep: "g=100%greeter-v9,0%greeter-v2",
			wantErr: `no target of the split with a positive weight resolved (100%greeter-v9: no provider named greeter-v9 in namespace team-a; 0%greeter-v2: resolved, but its weight is 0)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep, err := registry.ParseDependency(tt.dep)
			if err != nil {
				t.Fatal(err)
			}
			b, p, err := registry.ResolveBinding(dep, true, resolve)
			if tt.wantErr != "" {
				var re *registry.ResolveError
				if !errors.As(err, &re) || re.Reason != tt.wantErr {
					t.Fatalf("ResolveBinding(%s) = %v, want reason %q", tt.dep, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveBinding(%s) = %v", tt.dep, err)
			}
			if b.Provider != tt.wantProvider || p.Name != tt.wantProvider {
				t.Errorf("ResolveBinding(%s).Provider = %s (%s), want the primary %s", tt.dep, b.Provider, p.Name, tt.wantProvider)
			}
			if b.Selector != dep.SelectorString() {
				t.Errorf("binding selector = %q, want the whole split %q", b.Selector, dep.SelectorString())
			}
			if b.Secret["token"] != p.Secret["token"] {
				t.Errorf("binding secret = %v, want the primary's", b.Secret)
			}
			var got []target
			for _, st := range b.Split {
				got = append(got, target{st.Provider, st.Weight, st.Share, st.Primary, st.Unresolved != ""})
				if st.Provider != "" && len(st.Endpoints) == 0 {
					t.Errorf("target %s has no endpoints", st.Provider)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ResolveBinding(%s).Split (-want +got):\n%s", tt.dep, diff)
			}
			// The explanation agrees with the binding.
			ex := registry.ExplainDependency(checkout, dep, func(registry.Selector) []*registry.Provider { return all })
			if ex.Chosen != registry.Key(b.Namespace, b.Provider) {
				t.Errorf("ExplainDependency(%s).Chosen = %q, want %q", tt.dep, ex.Chosen, registry.Key(b.Namespace, b.Provider))
			}
			for i, te := range ex.Split {
				if te.Share != b.Split[i].Share || te.Primary != b.Split[i].Primary || te.Weight != b.Split[i].Weight {
					t.Errorf("ExplainDependency(%s).Split[%d] = weight %d share %d primary %v, want the binding's %+v", tt.dep, i, te.Weight, te.Share, te.Primary, b.Split[i])
				}
				if (te.Unresolved != "") != (b.Split[i].Unresolved != "") {
					t.Errorf("ExplainDependency(%s).Split[%d].Unresolved = %q, binding's %q", tt.dep, i, te.Unresolved, b.Split[i].Unresolved)
				}
			}
		})
	}
}
