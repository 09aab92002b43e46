package controlplane

import (
	"errors"
	"sort"
	"sync"

	"ddi.dev/ddi/internal/registry"
)

// view is an immutable index of every provider at one store revision. A new
// view replaces the old one on each batch of store events; readers never
// lock.
type view struct {
	revision int64
	byKey    map[string]*registry.Provider
	byType   map[string][]*registry.Provider
	all      []*registry.Provider
	// scoped marks types with a provider whose scope depends on more than
	// the consumer's namespace (service accounts, workloads, labels).
	scoped map[string]bool
	// memo caches type-selector resolutions of unscoped types by consumer
	// namespace and selector: many consumers share selectors, and a view
	// never changes.
	memo sync.Map // string -> memoResult
	// touched holds "type:T" and "key:NS/NAME" for every provider changed
	// since the previous view; nil means everything may have changed (a
	// fresh listing).
	touched map[string]bool
	// next is the view that replaced this one; it is set before the new view
	// is stored, so a reader that loaded a newer view may follow it.
	next *view
	// changed is closed when a newer view is published.
	changed chan struct{}
}

func newView(rev int64, providers map[string]*registry.Provider, touched map[string]bool) *view {
	v := &view{
		revision: rev,
		touched:  touched,
		byKey:    providers,
		byType:   make(map[string][]*registry.Provider),
		scoped:   make(map[string]bool),
		all:      make([]*registry.Provider, 0, len(providers)),
		changed:  make(chan struct{}),
	}
	for _, p := range providers {
		v.all = append(v.all, p)
	}
	sort.Slice(v.all, func(i, j int) bool { return v.all[i].Key() < v.all[j].Key() })
	for _, p := range v.all {
		v.byType[p.Type] = append(v.byType[p.Type], p)
		sc := &p.Scope
		if len(sc.ServiceAccounts) > 0 || len(sc.Workloads) > 0 || len(sc.WorkloadLabels) > 0 {
			v.scoped[p.Type] = true
		}
	}
	return v
}

// resolve is registry.Resolve over this view's candidates, memoised for
// type selectors whose outcome depends only on the consumer's namespace.
func (v *view) resolve(c registry.Consumer, dep registry.Dependency) (*registry.Provider, error) {
	sel := dep.Selector
	if sel.Provider != "" || v.scoped[sel.Type] {
		return registry.Resolve(c, dep, v.candidates(sel, c.Namespace))
	}
	key := c.Namespace + "\x00" + sel.String()
	if r, ok := v.memo.Load(key); ok {
		m := r.(memoResult)
		if m.reason != "" {
			return nil, &registry.ResolveError{Dependency: dep.Alias, Selector: m.selector, Reason: m.reason}
		}
		return m.p, nil
	}
	p, err := registry.Resolve(c, dep, v.candidates(sel, c.Namespace))
	m := memoResult{p: p}
	var re *registry.ResolveError
	switch {
	case err == nil:
	case errors.As(err, &re):
		// Without consumer-specific scopes the reason names only the type,
		// range, labels and namespace, so it holds for every consumer.
		m.reason, m.selector = re.Reason, re.Selector
	default:
		return p, err
	}
	v.memo.Store(key, m)
	return p, err
}

type memoResult struct {
	p                *registry.Provider
	reason, selector string
}

// candidates returns the providers a selector can match: the named one, or
// every provider of the selector's type.
func (v *view) candidates(sel registry.Selector, consumerNS string) []*registry.Provider {
	if sel.Provider != "" {
		ns := sel.Namespace
		if ns == "" {
			ns = consumerNS
		}
		if p, ok := v.byKey[registry.Key(ns, sel.Provider)]; ok {
			return []*registry.Provider{p}
		}
		return nil
	}
	return v.byType[sel.Type]
}

// affects reports whether any view after v, up to and including cur, changed
// a provider that one of deps can select. Streams whose dependencies were
// not touched skip recomputation entirely.
func affects(v, cur *view, deps []registry.Dependency, consumerNS string) bool {
	for x := v; x != cur; x = x.next {
		t := x.next.touched
		if t == nil {
			return true
		}
		for _, d := range deps {
			for _, tg := range d.Targets() {
				if tg.Selector.Provider != "" {
					ns := tg.Selector.Namespace
					if ns == "" {
						ns = consumerNS
					}
					if t["key:"+registry.Key(ns, tg.Selector.Provider)] {
						return true
					}
				} else if t["type:"+tg.Selector.Type] {
					return true
				}
			}
		}
	}
	return false
}
