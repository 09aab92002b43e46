package registry

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// AnyNamespace in a type selector's namespace accepts providers of every
// namespace that exports itself to the consumer (see Admits).
const AnyNamespace = "*"

// ErrUnresolved is wrapped by every resolution failure.
var ErrUnresolved = errors.New("unresolved dependency")

// ResolveError says why a dependency has no provider. Its message names the
// dependency and its selector.
type ResolveError struct {
	Dependency string
	Selector   string
	Reason     string
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("dependency %q (selector %q) is unresolved: %s", e.Dependency, e.Selector, e.Reason)
}

// Unwrap lets errors.Is(err, ErrUnresolved) succeed.
func (e *ResolveError) Unwrap() error { return ErrUnresolved }

// Admits reports whether the scope of provider p lets consumer c bind to it.
//
// Namespaces: empty admits only p's own namespace; otherwise c's namespace
// must be listed, or "*" must be. ServiceAccounts, Workloads and
// WorkloadLabels, when set, must each match as well.
func Admits(p *Provider, c Consumer) bool { return scopeRefusal(p, c) == "" }

// scopeRefusal returns the scope field of p that refuses consumer c, or ""
// when p admits c. It returns constants, so resolution does not allocate.
func scopeRefusal(p *Provider, c Consumer) string {
	s := &p.Scope
	cns := c.Namespace
	if cns == "" {
		cns = DefaultNamespace
	}
	if len(s.Namespaces) == 0 {
		if cns != p.Namespace {
			return "namespaces"
		}
	} else if !contains(s.Namespaces, cns) && !contains(s.Namespaces, "*") {
		return "namespaces"
	}
	if len(s.ServiceAccounts) > 0 && !contains(s.ServiceAccounts, c.ServiceAccount) {
		return "serviceAccounts"
	}
	if len(s.Workloads) > 0 && !contains(s.Workloads, c.Name) {
		return "workloads"
	}
	for k, v := range s.WorkloadLabels {
		if got, ok := c.Labels[k]; !ok || got != v {
			return "workloadLabels"
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Resolve picks the provider for one dependency of consumer c among
// providers. The rules, in order (docs/resolution.md):
//
//  1. A selector that names a provider considers only that provider (in the
//     selector's namespace, else the consumer's).
//  2. A type selector considers providers of that type in the selector's
//     namespace: the consumer's own unless the selector names one, or "*"
//     for every namespace.
//  3. ... whose version lies in the range and that carry every selector
//     label.
//  4. Only providers whose scope admits the consumer and that have at least
//     one ready endpoint count.
//  5. Among the rest the highest version wins; a provider without a version
//     counts as 0.0.0.
//  6. Ties go to a provider in the consumer's own namespace, then to the
//     lexically smallest namespace/name.
//
// No match is a *ResolveError that names the dependency and the selector,
// and says which rule excluded the candidates. Explain runs the same code
// and records every decision.
func Resolve(c Consumer, dep Dependency, providers []*Provider) (*Provider, error) {
	return resolve(c, dep, providers, nil)
}

// resolve is Resolve; when rec is non-nil it also records, for every
// provider it considers, the rule that admitted or rejected it. Recording
// never changes the outcome.
func resolve(c Consumer, dep Dependency, providers []*Provider, rec *recorder) (*Provider, error) {
	sel := dep.Selector
	fail := func(format string, args ...any) error {
		return &ResolveError{Dependency: dep.Alias, Selector: sel.String(), Reason: fmt.Sprintf(format, args...)}
	}
	cns := c.Namespace
	if cns == "" {
		cns = DefaultNamespace
	}
	if sel.Provider != "" {
		ns := sel.Namespace
		if ns == "" {
			ns = cns
		}
		rec.looksIn(ns)
		var named *Provider
		for _, p := range providers {
			if p.Name != sel.Provider {
				continue
			}
			if p.Namespace != ns {
				rec.reject(p, RuleNamespace, func() string { return "not in namespace " + ns + ", where the selector looks" })
				continue
			}
			named = p
		}
		if named == nil {
			return nil, rec.fail(fail("no provider named %s in namespace %s", sel.Provider, ns))
		}
		p := named
		if f := scopeRefusal(p, c); f != "" {
			rec.reject(p, RuleScope, func() string { return scopeDetail(p, c, f) })
			return nil, rec.fail(fail("provider %s/%s does not admit consumer %s/%s (see its scope)", ns, p.Name, cns, c.Name))
		}
		if len(p.ReadyEndpoints()) == 0 {
			rec.reject(p, RuleReadiness, func() string { return readinessDetail(p) })
			return nil, rec.fail(fail("provider %s/%s has no ready endpoint", ns, p.Name))
		}
		rec.admit(p, Version{})
		return p, rec.choose(p, cns)
	}

	var (
		best                                                  *Provider
		bestV                                                 Version
		typeMatch, nsMatch, versionMatch, labelMatch, inScope int
	)
	want := sel.Namespace
	if want == "" {
		want = cns
	}
	rec.looksIn(want)
	for _, p := range providers {
		if p.Type != sel.Type {
			rec.reject(p, RuleType, func() string { return "type " + p.Type + ", not " + sel.Type })
			continue
		}
		typeMatch++
		if want != AnyNamespace && p.Namespace != want {
			rec.reject(p, RuleNamespace, func() string {
				d := "in namespace " + p.Namespace + "; the selector looks only in " + want
				if sel.Namespace == "" {
					d += " (write */" + sel.String() + " to accept providers that other namespaces export)"
				}
				return d
			})
			continue
		}
		nsMatch++
		v, err := providerVersion(p)
		if err != nil || !sel.Range.Match(v) {
			rec.reject(p, RuleVersion, func() string {
				if err != nil {
					return "version " + strconv.Quote(p.Version) + " is not a semantic version"
				}
				return "version " + versionText(p) + " is outside " + sel.Range.String()
			})
			continue
		}
		versionMatch++
		if !hasLabels(p.Labels, sel.Labels) {
			rec.reject(p, RuleLabels, func() string { return missingLabels(p.Labels, sel.Labels) })
			continue
		}
		labelMatch++
		if f := scopeRefusal(p, c); f != "" {
			rec.reject(p, RuleScope, func() string { return scopeDetail(p, c, f) })
			continue
		}
		inScope++
		if len(p.ReadyEndpoints()) == 0 {
			rec.reject(p, RuleReadiness, func() string { return readinessDetail(p) })
			continue
		}
		rec.admit(p, v)
		if best == nil || better(p, v, best, bestV, cns) {
			best, bestV = p, v
		}
	}
	switch {
	case best != nil:
		return best, rec.choose(best, cns)
	case typeMatch == 0:
		return nil, rec.fail(fail("no provider has type %s", sel.Type))
	case nsMatch == 0 && sel.Namespace == "":
		return nil, rec.fail(fail("%d provider(s) of type %s, none in namespace %s (a type selector looks only in the consumer's namespace: write */%s to accept providers that other namespaces export to it)",
			typeMatch, sel.Type, want, sel.String()))
	case nsMatch == 0:
		return nil, rec.fail(fail("%d provider(s) of type %s, none in namespace %s", typeMatch, sel.Type, want))
	case versionMatch == 0:
		return nil, rec.fail(fail("%d provider(s) of type %s, none with a version in %s", nsMatch, sel.Type, sel.Range))
	case labelMatch == 0:
		return nil, rec.fail(fail("%d provider(s) of type %s in range %s, none with labels %s", versionMatch, sel.Type, sel.Range, formatLabels(sel.Labels)))
	case inScope == 0:
		return nil, rec.fail(fail("%d matching provider(s), none whose scope admits this consumer (namespace %s)", labelMatch, cns))
	default:
		return nil, rec.fail(fail("%d matching provider(s) in scope, none with a ready endpoint", inScope))
	}
}

// versionCache memoises parsed provider versions: resolution runs for
// every consumer on every change, over every candidate, and providers share
// few distinct version strings.
var (
	versionCache     sync.Map // string -> versionResult
	versionCacheSize atomic.Int64
)

const maxVersionCache = 65536

type versionResult struct {
	v   Version
	err error
}

func providerVersion(p *Provider) (Version, error) {
	if p.Version == "" {
		return Version{}, nil
	}
	if r, ok := versionCache.Load(p.Version); ok {
		vr := r.(versionResult)
		return vr.v, vr.err
	}
	v, err := ParseVersion(p.Version)
	if versionCacheSize.Load() < maxVersionCache {
		if _, loaded := versionCache.LoadOrStore(p.Version, versionResult{v, err}); !loaded {
			versionCacheSize.Add(1)
		}
	}
	return v, err
}

func better(p *Provider, pv Version, q *Provider, qv Version, cns string) bool {
	if c := pv.Compare(qv); c != 0 {
		return c > 0
	}
	if (p.Namespace == cns) != (q.Namespace == cns) {
		return p.Namespace == cns
	}
	return p.Key() < q.Key()
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func formatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// NewBinding builds the binding of dependency dep to provider p. The
// secret is included only when withSecret is true (the consumer is in the
// provider's scope, which Resolve already checked).
func NewBinding(dep Dependency, p *Provider, withSecret bool) Binding {
	b := Binding{
		Name:      dep.Alias,
		Provider:  p.Name,
		Namespace: p.Namespace,
		Type:      p.Type,
		Version:   p.Version,
		Endpoints: p.ReadyEndpoints(),
		Config:    p.Config,
		Selector:  dep.SelectorString(),
	}
	if withSecret {
		b.Secret = p.Secret
	}
	return b
}
