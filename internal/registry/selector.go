package registry

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Selector chooses providers for a dependency: either an explicit provider
// (Provider, optionally in Namespace) or a type with a version range and
// labels, among the providers of Namespace.
//
// For a type selector, Namespace empty means the consumer's own namespace
// only, AnyNamespace means every namespace whose providers export themselves
// to the consumer, and a name means that namespace only. A type selector
// never reaches beyond the consumer's namespace unless it says so.
type Selector struct {
	Namespace string            `json:"namespace,omitempty"`
	Provider  string            `json:"provider,omitempty"`
	Type      string            `json:"type,omitempty"`
	Range     Range             `json:"-"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// ParseSelector parses the selector syntax shared by `ddi run --dep`, the
// ddi.dev/dependencies annotation and the APIs:
//
//	NAME                       the provider called NAME in the consumer's namespace
//	NAMESPACE/NAME             the provider NAME in NAMESPACE
//	TYPE@RANGE                 the best provider of TYPE in the consumer's namespace whose version is in RANGE
//	TYPE@RANGE,KEY=VALUE,...   ... that also carries these labels
//	NAMESPACE/TYPE@RANGE       ... among the providers of NAMESPACE instead
//	*/TYPE@RANGE               ... among the providers of every namespace that exports to the consumer
//
// RANGE is "*" for any release, or a range such as "^1.2", "~1.4.0",
// ">=1.2 <2" (see ParseRange); it never contains commas.
func ParseSelector(s string) (Selector, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Selector{}, fmt.Errorf("empty selector: write a provider name such as \"payments\" or a type and range such as \"postgresql@^15\"")
	}
	at := strings.IndexByte(s, '@')
	if at < 0 {
		var sel Selector
		name := s
		if i := strings.IndexByte(s, '/'); i >= 0 {
			sel.Namespace, name = s[:i], s[i+1:]
			if err := ValidateName("selector namespace", sel.Namespace); err != nil {
				return Selector{}, err
			}
		}
		if strings.ContainsAny(name, ",=") {
			return Selector{}, fmt.Errorf("selector %q: labels need a type and range first, as in \"http@*,tier=gold\"", s)
		}
		if err := ValidateName("selector provider name", name); err != nil {
			return Selector{}, err
		}
		sel.Provider = name
		return sel, nil
	}
	var sel Selector
	typ := s[:at]
	if i := strings.IndexByte(typ, '/'); i >= 0 {
		sel.Namespace, typ = typ[:i], typ[i+1:]
		if sel.Namespace != AnyNamespace {
			if err := ValidateName("selector namespace", sel.Namespace); err != nil {
				return Selector{}, fmt.Errorf("selector %q: %w (or \"*\" for every namespace that exports to this one)", s, err)
			}
		}
	}
	sel.Type = CanonicalType(typ)
	if err := ValidateType(sel.Type); err != nil {
		return Selector{}, fmt.Errorf("selector %q: %w", s, err)
	}
	parts := strings.Split(s[at+1:], ",")
	if strings.TrimSpace(parts[0]) == "" {
		return Selector{}, fmt.Errorf("selector %q: empty version range after '@': use \"*\" for any version", s)
	}
	r, err := ParseRange(parts[0])
	if err != nil {
		return Selector{}, fmt.Errorf("selector %q: %w", s, err)
	}
	sel.Range = r
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return Selector{}, fmt.Errorf("selector %q: label %q must be KEY=VALUE", s, kv)
		}
		if err := ValidateLabel(k, v); err != nil {
			return Selector{}, fmt.Errorf("selector %q: %w", s, err)
		}
		if sel.Labels == nil {
			sel.Labels = map[string]string{}
		}
		sel.Labels[k] = v
	}
	return sel, nil
}

// String formats the selector in the syntax ParseSelector reads.
func (s Selector) String() string {
	if s.Provider != "" {
		if s.Namespace != "" {
			return s.Namespace + "/" + s.Provider
		}
		return s.Provider
	}
	var b strings.Builder
	if s.Namespace != "" {
		b.WriteString(s.Namespace)
		b.WriteByte('/')
	}
	b.WriteString(s.Type)
	b.WriteByte('@')
	b.WriteString(s.Range.String())
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteByte(',')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(s.Labels[k])
	}
	return b.String()
}

// MarshalJSON writes the selector as its string form.
func (s Selector) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads the string form.
func (s *Selector) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("selector must be a string such as \"payments\" or \"postgresql@^15\"")
	}
	v, err := ParseSelector(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseDependency parses "ALIAS=SELECTOR", or a weighted traffic split
// "ALIAS=W%SELECTOR,W%SELECTOR,..." (see NewSplit for its rules).
func ParseDependency(s string) (Dependency, error) {
	alias, sel, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return Dependency{}, fmt.Errorf("dependency %q must be ALIAS=SELECTOR, for example db=postgresql@^15 or greeter=greeter", s)
	}
	if err := ValidateName("dependency alias", alias); err != nil {
		return Dependency{}, err
	}
	if isSplitSyntax(sel) {
		d, err := parseSplit(alias, sel)
		if err != nil {
			return Dependency{}, fmt.Errorf("dependency %q: %w", alias, err)
		}
		return d, nil
	}
	parsed, err := ParseSelector(sel)
	if err != nil {
		return Dependency{}, fmt.Errorf("dependency %q: %w", alias, err)
	}
	return Dependency{Alias: alias, Selector: parsed}, nil
}

// ParseDependencies parses a list of "ALIAS=SELECTOR" entries separated by
// ';' or newlines (the ddi.dev/dependencies annotation format). Aliases must
// be unique.
func ParseDependencies(s string) ([]Dependency, error) {
	var entries []string
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		if strings.TrimSpace(line) != "" {
			entries = append(entries, line)
		}
	}
	return ParseDependencyList(entries)
}

// ParseDependencyList parses "ALIAS=SELECTOR" entries (as repeated --dep
// flags or a stream hello carry them). Aliases must be unique.
func ParseDependencyList(entries []string) ([]Dependency, error) {
	deps := make([]Dependency, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		d, err := ParseDependency(e)
		if err != nil {
			return nil, err
		}
		if seen[d.Alias] {
			return nil, fmt.Errorf("dependency alias %q is declared twice", d.Alias)
		}
		seen[d.Alias] = true
		deps = append(deps, d)
	}
	return deps, nil
}

// FormatDependencies is the inverse of ParseDependencies.
func FormatDependencies(deps []Dependency) string {
	parts := make([]string, len(deps))
	for i, d := range deps {
		parts[i] = d.Alias + "=" + d.SelectorString()
	}
	return strings.Join(parts, ";")
}
