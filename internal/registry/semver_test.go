package registry_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ddi.dev/ddi/internal/registry"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    registry.Version
		wantErr bool
	}{
		{in: "1.4.2", want: registry.Version{Major: 1, Minor: 4, Patch: 2}},
		{in: "v1.4.2", want: registry.Version{Major: 1, Minor: 4, Patch: 2}},
		{in: "0.0.0", want: registry.Version{}},
		{in: "10.20.30", want: registry.Version{Major: 10, Minor: 20, Patch: 30}},
		{in: "2.0.0-rc.1", want: registry.Version{Major: 2, Pre: []string{"rc", "1"}}},
		{in: "1.0.0-alpha-beta.0.x-y", want: registry.Version{Major: 1, Pre: []string{"alpha-beta", "0", "x-y"}}},
		{in: "1.0.0+build.5", want: registry.Version{Major: 1, Build: "build.5"}},
		{in: "1.0.0-beta+exp.sha.5114f85", want: registry.Version{Major: 1, Pre: []string{"beta"}, Build: "exp.sha.5114f85"}},
		{in: "", wantErr: true},
		{in: "v", wantErr: true},
		{in: "1", wantErr: true},
		{in: "1.2", wantErr: true},
		{in: "1.2.x", wantErr: true},
		{in: "1.2.3.4", wantErr: true},
		{in: "01.2.3", wantErr: true},
		{in: "1.02.3", wantErr: true},
		{in: "1..3", wantErr: true},
		{in: "a.b.c", wantErr: true},
		{in: "-1.2.3", wantErr: true},
		{in: "1.2.3-", wantErr: true},
		{in: "1.2.3+", wantErr: true},
		{in: "1.2.3-alpha..1", wantErr: true},
		{in: "1.2.3-al_pha", wantErr: true},
		{in: "1.2.3-01", wantErr: true}, // numeric identifiers have no leading zeros
		{in: "1.2-rc.1", wantErr: true},
		{in: "99999999999999999999.0.0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := registry.ParseVersion(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseVersion(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseVersion(%q) error = %v, want nil", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseVersion(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestVersionString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: "v1.4.2", want: "1.4.2"},
		{in: "2.0.0-rc.1", want: "2.0.0-rc.1"},
		{in: "1.0.0-beta+exp.5", want: "1.0.0-beta+exp.5"},
	}
	for _, tt := range tests {
		v, err := registry.ParseVersion(tt.in)
		if err != nil {
			t.Fatalf("ParseVersion(%q) error = %v", tt.in, err)
		}
		if got := v.String(); got != tt.want {
			t.Errorf("ParseVersion(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	// In increasing precedence (semver.org 2.0, section 11).
	ordered := []string{
		"0.0.0",
		"0.0.1",
		"0.1.0",
		"0.10.0",
		"1.0.0-0",
		"1.0.0-9",
		"1.0.0-10",
		"1.0.0-alpha",
		"1.0.0-alpha.1",
		"1.0.0-alpha.beta",
		"1.0.0-beta",
		"1.0.0-beta.2",
		"1.0.0-beta.11",
		"1.0.0-rc.1",
		"1.0.0",
		"1.0.1",
		"1.2.0",
		"1.10.0",
		"2.0.0",
		"10.0.0",
	}
	for i, a := range ordered {
		for j, b := range ordered {
			va, vb := mustVersion(t, a), mustVersion(t, b)
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := va.Compare(vb); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}

	equal := []struct {
		a, b string
	}{
		{a: "1.0.0+build.1", b: "1.0.0+build.2"},
		{a: "1.0.0+build", b: "1.0.0"},
		{a: "v1.0.0", b: "1.0.0"},
		{a: "1.0.0-rc.1+x", b: "1.0.0-rc.1"},
	}
	for _, tt := range equal {
		if got := mustVersion(t, tt.a).Compare(mustVersion(t, tt.b)); got != 0 {
			t.Errorf("Compare(%s, %s) = %d, want 0: build metadata does not count", tt.a, tt.b, got)
		}
	}
}

func mustVersion(t *testing.T, s string) registry.Version {
	t.Helper()
	v, err := registry.ParseVersion(s)
	if err != nil {
		t.Fatalf("ParseVersion(%q) error = %v", s, err)
	}
	return v
}

func TestRangeMatch(t *testing.T) {
	tests := []struct {
		name    string
		rng     string
		match   []string
		noMatch []string
	}{
		{
			name:    "empty is any release",
			rng:     "",
			match:   []string{"0.0.0", "1.2.3", "99.0.0"},
			noMatch: []string{"1.0.0-rc.1"},
		},
		{
			name:    "star is any release",
			rng:     "*",
			match:   []string{"0.0.0", "1.2.3", "99.0.0"},
			noMatch: []string{"1.0.0-rc.1"},
		},
		{
			name:    "exact",
			rng:     "1.2.3",
			match:   []string{"1.2.3", "1.2.3+build"},
			noMatch: []string{"1.2.4", "1.2.2", "1.3.0", "1.2.3-rc.1"},
		},
		{
			name:    "exact with v",
			rng:     "v1.2.3",
			match:   []string{"1.2.3"},
			noMatch: []string{"1.2.4"},
		},
		{
			name:    "equals",
			rng:     "=1.2.3",
			match:   []string{"1.2.3"},
			noMatch: []string{"1.2.4", "1.2.3-rc.1"},
		},
		{
			name:    "equals pre-release",
			rng:     "=2.0.0-rc.1",
			match:   []string{"2.0.0-rc.1"},
			noMatch: []string{"2.0.0-rc.2", "2.0.0"},
		},
		{
			name:    "equals partial",
			rng:     "=1.2",
			match:   []string{"1.2.0", "1.2.9"},
			noMatch: []string{"1.3.0", "1.1.9"},
		},
		{
			name:    "caret major",
			rng:     "^1.2.3",
			match:   []string{"1.2.3", "1.2.4", "1.9.0", "1.99.99"},
			noMatch: []string{"1.2.2", "2.0.0", "0.9.0", "1.5.0-beta", "2.0.0-rc.1"},
		},
		{
			name:    "caret major partial",
			rng:     "^1.2",
			match:   []string{"1.2.0", "1.9.9"},
			noMatch: []string{"1.1.9", "2.0.0"},
		},
		{
			name:    "caret major only",
			rng:     "^15",
			match:   []string{"15.0.0", "15.9.1"},
			noMatch: []string{"14.9.9", "16.0.0"},
		},
		{
			name:    "caret zero minor",
			rng:     "^0.3.1",
			match:   []string{"0.3.1", "0.3.9"},
			noMatch: []string{"0.3.0", "0.4.0", "1.0.0"},
		},
		{
			name:    "caret zero minor partial",
			rng:     "^0.3",
			match:   []string{"0.3.0", "0.3.9"},
			noMatch: []string{"0.2.9", "0.4.0"},
		},
		{
			name:    "caret zero patch",
			rng:     "^0.0.3",
			match:   []string{"0.0.3"},
			noMatch: []string{"0.0.2", "0.0.4", "0.1.0"},
		},
		{
			name:    "caret zero zero",
			rng:     "^0.0",
			match:   []string{"0.0.0", "0.0.9"},
			noMatch: []string{"0.1.0"},
		},
		{
			name:    "caret zero",
			rng:     "^0",
			match:   []string{"0.0.0", "0.9.9"},
			noMatch: []string{"1.0.0"},
		},
		{
			name:    "caret zero x",
			rng:     "^0.x",
			match:   []string{"0.0.1", "0.9.9"},
			noMatch: []string{"1.0.0"},
		},
		{
			name:    "caret pre-release",
			rng:     "^1.2.3-beta.2",
			match:   []string{"1.2.3-beta.2", "1.2.3-beta.10", "1.2.3", "1.9.0"},
			noMatch: []string{"1.2.3-beta.1", "1.2.4-beta.1", "1.2.3-alpha", "2.0.0"},
		},
		{
			name:    "tilde",
			rng:     "~1.2.3",
			match:   []string{"1.2.3", "1.2.9"},
			noMatch: []string{"1.2.2", "1.3.0", "1.2.5-rc.1"},
		},
		{
			name:    "tilde partial",
			rng:     "~1.2",
			match:   []string{"1.2.0", "1.2.9"},
			noMatch: []string{"1.3.0", "1.1.0"},
		},
		{
			name:    "tilde major",
			rng:     "~1",
			match:   []string{"1.0.0", "1.9.9"},
			noMatch: []string{"2.0.0", "0.9.0"},
		},
		{
			name:    "tilde zero",
			rng:     "~0.2.1",
			match:   []string{"0.2.1", "0.2.5"},
			noMatch: []string{"0.3.0", "0.2.0"},
		},
		{
			name:    "greater or equal",
			rng:     ">=1.2.3",
			match:   []string{"1.2.3", "1.2.4", "5.0.0"},
			noMatch: []string{"1.2.2", "0.0.0", "2.0.0-rc.1"},
		},
		{
			name:    "greater or equal partial",
			rng:     ">=1.2",
			match:   []string{"1.2.0", "3.0.0"},
			noMatch: []string{"1.1.9"},
		},
		{
			name:    "greater",
			rng:     ">1.2.3",
			match:   []string{"1.2.4", "2.0.0"},
			noMatch: []string{"1.2.3", "1.0.0"},
		},
		{
			name:    "greater partial",
			rng:     ">1.2",
			match:   []string{"1.3.0", "2.0.0"},
			noMatch: []string{"1.2.0", "1.2.9"},
		},
		{
			name:    "greater major",
			rng:     ">1",
			match:   []string{"2.0.0"},
			noMatch: []string{"1.0.0", "1.9.9"},
		},
		{
			name:    "less",
			rng:     "<2.0.0",
			match:   []string{"1.9.9", "0.0.0"},
			noMatch: []string{"2.0.0", "2.0.1", "2.0.0-rc.1"},
		},
		{
			name:    "less partial",
			rng:     "<2",
			match:   []string{"1.9.9"},
			noMatch: []string{"2.0.0"},
		},
		{
			name:    "less or equal",
			rng:     "<=2.1.0",
			match:   []string{"2.1.0", "2.0.9"},
			noMatch: []string{"2.1.1"},
		},
		{
			name:    "less or equal partial",
			rng:     "<=2.1",
			match:   []string{"2.1.0", "2.1.9"},
			noMatch: []string{"2.2.0"},
		},
		{
			name:    "major wildcard",
			rng:     "1.x",
			match:   []string{"1.0.0", "1.9.9"},
			noMatch: []string{"2.0.0", "0.9.9", "1.2.0-rc.1"},
		},
		{
			name:    "minor wildcard",
			rng:     "1.2.x",
			match:   []string{"1.2.0", "1.2.9"},
			noMatch: []string{"1.3.0", "1.1.9"},
		},
		{
			name:    "upper-case and star wildcards",
			rng:     "1.X.*",
			match:   []string{"1.0.0", "1.9.9"},
			noMatch: []string{"2.0.0"},
		},
		{
			name:    "bare major",
			rng:     "1",
			match:   []string{"1.0.0", "1.9.9"},
			noMatch: []string{"2.0.0"},
		},
		{
			name:    "all-wildcard term",
			rng:     "x.x",
			match:   []string{"0.0.0", "1.2.3", "9.9.9"},
			noMatch: []string{"1.0.0-rc.1"},
		},
		{
			name:    "all-wildcard full term",
			rng:     "*.*.*",
			match:   []string{"0.0.0", "1.2.3"},
			noMatch: []string{"1.0.0-rc.1"},
		},
		{
			name:    "greater or equal any",
			rng:     ">=*",
			match:   []string{"0.0.0", "7.0.0"},
			noMatch: []string{"7.0.0-rc.1"},
		},
		{
			name:    "conjunction",
			rng:     ">=1.2 <2",
			match:   []string{"1.2.0", "1.9.9"},
			noMatch: []string{"1.1.9", "2.0.0"},
		},
		{
			name:    "conjunction with extra spaces",
			rng:     "  >1.2.3   <=1.4.0 ",
			match:   []string{"1.2.4", "1.4.0"},
			noMatch: []string{"1.2.3", "1.4.1"},
		},
		{
			name:    "disjunction",
			rng:     "^1.2 || ^3",
			match:   []string{"1.2.0", "1.9.0", "3.0.0", "3.5.1"},
			noMatch: []string{"2.0.0", "1.1.0", "4.0.0"},
		},
		{
			name:    "disjunction without spaces",
			rng:     "1.0.0||2.0.0",
			match:   []string{"1.0.0", "2.0.0"},
			noMatch: []string{"1.5.0"},
		},
		{
			name:    "disjunction of conjunctions",
			rng:     ">=1.0.0 <1.5.0 || >=2.0.0 <2.1.0",
			match:   []string{"1.0.0", "1.4.9", "2.0.5"},
			noMatch: []string{"1.5.0", "1.9.0", "2.1.0"},
		},
		{
			name:    "pre-release allowed only on the named tuple",
			rng:     ">=1.2.3-alpha.3 <2",
			match:   []string{"1.2.3-alpha.3", "1.2.3-alpha.7", "1.2.3-beta", "1.2.3", "1.5.0"},
			noMatch: []string{"1.2.3-alpha.2", "1.2.4-alpha.9", "1.5.0-beta", "2.0.0-rc.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := registry.ParseRange(tt.rng)
			if err != nil {
				t.Fatalf("ParseRange(%q) error = %v, want nil", tt.rng, err)
			}
			for _, v := range tt.match {
				if !r.Match(mustVersion(t, v)) {
					t.Errorf("ParseRange(%q).Match(%s) = false, want true", tt.rng, v)
				}
			}
			for _, v := range tt.noMatch {
				if r.Match(mustVersion(t, v)) {
					t.Errorf("ParseRange(%q).Match(%s) = true, want false", tt.rng, v)
				}
			}
		})
	}
}

func TestParseRangeErrors(t *testing.T) {
	tests := []struct {
		name string
		rng  string
	}{
		{name: "empty alternative", rng: "^1 ||"},
		{name: "leading or", rng: "|| ^1"},
		{name: "double or", rng: "^1 || || ^2"},
		{name: "operator alone", rng: ">="},
		{name: "operator then space", rng: ">= 1.2"},
		{name: "caret wildcard", rng: "^*"},
		{name: "tilde wildcard", rng: "~x"},
		{name: "greater wildcard", rng: ">*"},
		{name: "less wildcard", rng: "<x.x"},
		{name: "number after wildcard", rng: "1.x.3"},
		{name: "letters", rng: "latest"},
		{name: "four parts", rng: "1.2.3.4"},
		{name: "leading zero", rng: "^01.2"},
		{name: "partial pre-release", rng: "^1.2-rc.1"},
		{name: "hyphen range", rng: "1.0.0 - 2.0.0"},
		{name: "comma", rng: "^1,^2"},
		// The upper bound of these would wrap to 0 and match nothing.
		{name: "largest major, caret", rng: "^18446744073709551615"},
		{name: "largest minor, tilde", rng: "~1.18446744073709551615"},
		{name: "largest patch, greater", rng: ">1.2.18446744073709551615"},
		{name: "largest major, partial", rng: "18446744073709551615"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := registry.ParseRange(tt.rng); err == nil {
				t.Errorf("ParseRange(%q) = %v, want an error", tt.rng, r)
			}
		})
	}
}

func TestRangeString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: "", want: "*"},
		{in: "*", want: "*"},
		{in: " ^1.2 ", want: "^1.2"},
		{in: ">=1.2 <2 || 3.x", want: ">=1.2 <2 || 3.x"},
	}
	for _, tt := range tests {
		r, err := registry.ParseRange(tt.in)
		if err != nil {
			t.Fatalf("ParseRange(%q) error = %v", tt.in, err)
		}
		if got := r.String(); got != tt.want {
			t.Errorf("ParseRange(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := (registry.Range{}).String(); got != "*" {
		t.Errorf("Range{}.String() = %q, want %q", got, "*")
	}
}
