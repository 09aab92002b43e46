package controlplane

import (
	"sort"

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
	// changed is closed when a newer view is published.
	changed chan struct{}
}

func newView(rev int64, providers map[string]*registry.Provider) *view {
	v := &view{
		revision: rev,
		byKey:    providers,
		byType:   make(map[string][]*registry.Provider),
		all:      make([]*registry.Provider, 0, len(providers)),
		changed:  make(chan struct{}),
	}
	for _, p := range providers {
		v.all = append(v.all, p)
	}
	sort.Slice(v.all, func(i, j int) bool { return v.all[i].Key() < v.all[j].Key() })
	for _, p := range v.all {
		v.byType[p.Type] = append(v.byType[p.Type], p)
	}
	return v
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
