package registry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxSplitTargets bounds the targets of one weighted traffic split. The
// DependencySet CRD has the same bound: its validation rules must fit the
// API server's cost budget over 64 dependencies.
const MaxSplitTargets = 4

// Target is one weighted target of a traffic split: a selector (a provider
// name or a type, range and labels, as for a plain dependency) and the
// percentage of invocations it should receive.
type Target struct {
	Selector Selector `json:"selector"`
	Weight   int      `json:"weight"`
}

// SplitTarget is one target of a split as a binding shows it: the declared
// weight, the share of invocations it actually receives, and the provider
// it resolved to or the reason it did not.
type SplitTarget struct {
	Selector string `json:"selector"`
	// Weight is the declared percentage.
	Weight int `json:"weight"`
	// Share is the percentage of invocations the target receives: its
	// weight, scaled up when other targets are unresolved so that the
	// resolved shares add up to 100; 0 when the target is unresolved.
	Share int `json:"share"`
	// Primary marks the target whose provider fills the binding's own
	// fields (files, typed clients, GET /v1/bindings/{name}).
	Primary   bool       `json:"primary,omitempty"`
	Provider  string     `json:"provider,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	Type      string     `json:"type,omitempty"`
	Version   string     `json:"version,omitempty"`
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Unresolved is why the target has no provider; empty when it has.
	Unresolved string `json:"unresolved,omitempty"`
}

// IsSplit reports whether the dependency is a weighted traffic split.
func (d Dependency) IsSplit() bool { return len(d.Split) > 0 }

// SelectorString formats what the dependency selects in the syntax
// ParseDependency reads after "ALIAS=": the selector, or the split
// ("90%greeter-v1,10%greeter-v2").
func (d Dependency) SelectorString() string {
	if len(d.Split) == 0 {
		return d.Selector.String()
	}
	parts := make([]string, len(d.Split))
	for i, t := range d.Split {
		parts[i] = strconv.Itoa(t.Weight) + "%" + t.Selector.String()
	}
	return strings.Join(parts, ",")
}

// Targets returns the dependency's targets: the split's, or its one
// selector at weight 100.
func (d Dependency) Targets() []Target {
	if len(d.Split) == 0 {
		return []Target{{Selector: d.Selector, Weight: 100}}
	}
	return d.Split
}

// SplitError says which target of a split, and which of its fields, is
// wrong, and how to fix it.
type SplitError struct {
	// Index is the target's position, from 0; -1 for the split as a whole.
	Index int
	// Field is "weight" or "selector", empty for the split as a whole.
	Field  string
	Reason string
}

func (e *SplitError) Error() string {
	if e.Index < 0 {
		return e.Reason
	}
	return fmt.Sprintf("target %d %s: %s", e.Index+1, e.Field, e.Reason)
}

const splitExample = "as in 90%greeter-v1,10%greeter-v2"

// NewSplit builds the dependency alias that splits invocations among
// targets by weight. Weights are whole percentages from 0 to 100 that add
// up to 100; every target has a selector; no selector appears twice; at
// most MaxSplitTargets targets. The primary target, whose selector becomes
// Dependency.Selector, is the one with the highest weight, the first listed
// among equals. A single target at 100 is a plain dependency.
func NewSplit(alias string, targets []Target) (Dependency, error) {
	if len(targets) == 0 {
		return Dependency{}, &SplitError{Index: -1, Reason: "a split needs at least one target, " + splitExample}
	}
	if len(targets) > MaxSplitTargets {
		return Dependency{}, &SplitError{Index: -1, Reason: fmt.Sprintf("a split has %d targets; at most %d are allowed", len(targets), MaxSplitTargets)}
	}
	sum, primary := 0, 0
	seen := make(map[string]int, len(targets))
	for i, t := range targets {
		if t.Selector.Provider == "" && t.Selector.Type == "" {
			return Dependency{}, &SplitError{Index: i, Field: "selector", Reason: "is missing: name a provider (greeter-v2) or a type and range (http@^2) after the weight, " + splitExample}
		}
		if t.Weight < 0 || t.Weight > 100 {
			return Dependency{}, &SplitError{Index: i, Field: "weight", Reason: fmt.Sprintf("%d is not a whole percentage from 0 to 100", t.Weight)}
		}
		s := t.Selector.String()
		if j, ok := seen[s]; ok {
			return Dependency{}, &SplitError{Index: i, Field: "selector", Reason: fmt.Sprintf("%q repeats target %d: list each target once and give it the sum of the weights", s, j+1)}
		}
		seen[s] = i
		sum += t.Weight
		if t.Weight > targets[primary].Weight {
			primary = i
		}
	}
	if sum != 100 {
		return Dependency{}, &SplitError{Index: -1, Reason: fmt.Sprintf("the weights add up to %d, not 100: change them so that they do, %s", sum, splitExample)}
	}
	d := Dependency{Alias: alias, Selector: targets[primary].Selector}
	if len(targets) > 1 {
		d.Split = append([]Target(nil), targets...)
	}
	return d, nil
}

// isSplitSyntax reports whether a selector text is a split: '%' appears in
// no other selector.
func isSplitSyntax(s string) bool { return strings.IndexByte(s, '%') >= 0 }

// parseSplit reads "W%SELECTOR,W%SELECTOR,...". A part that holds '%'
// starts a target; the parts after it without '%' are the labels of its
// selector ("90%http@^1,tier=gold,10%http@^2").
func parseSplit(alias, s string) (Dependency, error) {
	var (
		targets []Target
		texts   []string
	)
	for i, part := range strings.Split(s, ",") {
		w, rest, ok := strings.Cut(part, "%")
		if !ok {
			if i == 0 {
				return Dependency{}, &SplitError{Index: 0, Field: "weight", Reason: "is missing: in a split every target starts with its weight, " + splitExample}
			}
			texts[len(texts)-1] += "," + part
			continue
		}
		n := len(targets)
		ws := strings.TrimSpace(w)
		weight, err := strconv.Atoi(ws)
		if err != nil || strings.HasPrefix(ws, "+") {
			return Dependency{}, &SplitError{Index: n, Field: "weight", Reason: fmt.Sprintf("%q is not a whole percentage from 0 to 100, %s", ws, splitExample)}
		}
		if weight < 0 || weight > 100 {
			return Dependency{}, &SplitError{Index: n, Field: "weight", Reason: fmt.Sprintf("%d is not a whole percentage from 0 to 100", weight)}
		}
		targets = append(targets, Target{Weight: weight})
		texts = append(texts, rest)
		if len(targets) > MaxSplitTargets {
			return Dependency{}, &SplitError{Index: -1, Reason: fmt.Sprintf("a split has more than %d targets", MaxSplitTargets)}
		}
	}
	for i, text := range texts {
		if strings.TrimSpace(text) == "" {
			return Dependency{}, &SplitError{Index: i, Field: "selector", Reason: "is missing: name a provider (greeter-v2) or a type and range (http@^2) after the weight, " + splitExample}
		}
		sel, err := ParseSelector(text)
		if err != nil {
			return Dependency{}, &SplitError{Index: i, Field: "selector", Reason: err.Error()}
		}
		targets[i].Selector = sel
	}
	return NewSplit(alias, targets)
}

// ShareOut divides 100 among weights by the largest-remainder method:
// the shares add up to 100 (when a weight is positive) and each is its
// weight's proportion rounded down or up. Earlier entries win ties.
func ShareOut(weights []int) []int {
	shares := make([]int, len(weights))
	sum := 0
	for _, w := range weights {
		sum += w
	}
	if sum == 0 {
		return shares
	}
	left := 100
	rem := make([]int, len(weights))
	for i, w := range weights {
		shares[i] = w * 100 / sum
		rem[i] = w * 100 % sum
		left -= shares[i]
	}
	for ; left > 0; left-- {
		best := -1
		for i := range rem {
			if weights[i] > 0 && (best < 0 || rem[i] > rem[best]) {
				best = i
			}
		}
		shares[best]++
		rem[best] = -1
	}
	return shares
}

// BindSplit builds the binding of a split dependency from the resolution
// of each of its targets: providers[i] is target i's provider, or nil with
// errs[i] saying why it is unresolved.
//
// A target that did not resolve receives no invocation: its weight is
// shared among the resolved targets in proportion to their weights, and
// the binding lists it with its reason. The binding's own fields are
// those of the primary: the resolved target with the highest declared
// weight, the first listed among equals. Only the primary's config and
// secret travel (binding files and typed clients use the primary). When
// no target of positive weight resolves, the dependency is unresolved and
// the error's reason lists every target's.
func BindSplit(dep Dependency, providers []*Provider, errs []error, withSecret bool) (Binding, error) {
	targets := dep.Targets()
	weights := make([]int, len(targets))
	primary := -1
	for i, t := range targets {
		if providers[i] == nil {
			continue
		}
		weights[i] = t.Weight
		if t.Weight > 0 && (primary < 0 || t.Weight > targets[primary].Weight) {
			primary = i
		}
	}
	if primary < 0 {
		reasons := make([]string, len(targets))
		for i, t := range targets {
			r := "resolved, but its weight is 0"
			var re *ResolveError
			switch {
			case errors.As(errs[i], &re):
				r = re.Reason
			case errs[i] != nil:
				r = errs[i].Error()
			}
			reasons[i] = fmt.Sprintf("%d%%%s: %s", t.Weight, t.Selector.String(), r)
		}
		return Binding{}, &ResolveError{Dependency: dep.Alias, Selector: dep.SelectorString(),
			Reason: "no target of the split with a positive weight resolved (" + strings.Join(reasons, "; ") + ")"}
	}
	shares := ShareOut(weights)
	b := NewBinding(dep, providers[primary], withSecret)
	b.Split = make([]SplitTarget, len(targets))
	for i, t := range targets {
		st := SplitTarget{Selector: t.Selector.String(), Weight: t.Weight, Share: shares[i], Primary: i == primary}
		if p := providers[i]; p != nil {
			st.Provider, st.Namespace, st.Type, st.Version = p.Name, p.Namespace, p.Type, p.Version
			st.Endpoints = p.ReadyEndpoints()
		} else {
			var re *ResolveError
			if errors.As(errs[i], &re) {
				st.Unresolved = re.Reason
			} else if errs[i] != nil {
				st.Unresolved = errs[i].Error()
			}
		}
		b.Split[i] = st
	}
	return b, nil
}

// ResolveBinding resolves every target of dep with resolve (Resolve over
// the right candidates) and builds its binding: NewBinding for a plain
// dependency, BindSplit for a split.
func ResolveBinding(dep Dependency, withSecret bool, resolve func(Dependency) (*Provider, error)) (Binding, *Provider, error) {
	if !dep.IsSplit() {
		p, err := resolve(dep)
		if err != nil {
			return Binding{}, nil, err
		}
		return NewBinding(dep, p, withSecret), p, nil
	}
	providers := make([]*Provider, len(dep.Split))
	errs := make([]error, len(dep.Split))
	for i, t := range dep.Split {
		providers[i], errs[i] = resolve(Dependency{Alias: dep.Alias, Selector: t.Selector})
	}
	b, err := BindSplit(dep, providers, errs, withSecret)
	if err != nil {
		return Binding{}, nil, err
	}
	for i, st := range b.Split {
		if st.Primary {
			return b, providers[i], nil
		}
	}
	return b, nil, nil
}
