package main

import (
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"

	netv1alpha1 "knative.dev/networking/pkg/apis/networking/v1alpha1"
)

// table is an immutable routing table built from KIngress objects. A request
// is matched by host, then by the first path whose prefix and headers match,
// then sent to one of that path's splits, chosen by weight.
type table struct {
	// public holds the rules visible outside the cluster (ExternalIP);
	// internal holds every rule, for callers inside the cluster.
	public   map[string][]*path
	internal map[string][]*path
}

// path is one HTTP path of one KIngress rule.
type path struct {
	ingress       string // namespace/name, for logs
	prefix        string
	headers       map[string]string
	rewriteHost   string
	appendHeaders map[string]string
	splits        []netv1alpha1.IngressBackendSplit
	total         int
}

// buildTable builds the routing table for ingresses. Hosts appear in it in
// lower case without a port.
func buildTable(ingresses []*netv1alpha1.Ingress) *table {
	t := &table{public: map[string][]*path{}, internal: map[string][]*path{}}
	// Oldest first, so that an older Ingress keeps a host a newer one claims too.
	sorted := append([]*netv1alpha1.Ingress(nil), ingresses...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].CreationTimestamp, sorted[j].CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return sorted[i].Namespace+"/"+sorted[i].Name < sorted[j].Namespace+"/"+sorted[j].Name
	})
	for _, ing := range sorted {
		key := ing.Namespace + "/" + ing.Name
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			var paths []*path
			for _, p := range rule.HTTP.Paths {
				np := &path{
					ingress:       key,
					prefix:        p.Path,
					rewriteHost:   p.RewriteHost,
					appendHeaders: p.AppendHeaders,
					splits:        p.Splits,
				}
				if len(p.Headers) > 0 {
					np.headers = make(map[string]string, len(p.Headers))
					for k, v := range p.Headers {
						np.headers[http.CanonicalHeaderKey(k)] = v.Exact
					}
				}
				for _, s := range p.Splits {
					np.total += max(s.Percent, 0)
				}
				paths = append(paths, np)
			}
			for _, h := range rule.Hosts {
				h = strings.ToLower(h)
				t.internal[h] = append(t.internal[h], paths...)
				if rule.Visibility != netv1alpha1.IngressVisibilityClusterLocal {
					t.public[h] = append(t.public[h], paths...)
				}
			}
		}
	}
	return t
}

// match returns the path that serves r, or nil.
func (t *table) match(r *http.Request, public bool) *path {
	routes := t.internal
	if public {
		routes = t.public
	}
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, p := range routes[host] {
		if p.matches(r) {
			return p
		}
	}
	return nil
}

func (p *path) matches(r *http.Request) bool {
	if p.prefix != "" && !strings.HasPrefix(r.URL.Path, p.prefix) {
		return false
	}
	for k, v := range p.headers {
		if r.Header.Get(k) != v {
			return false
		}
	}
	return true
}

// pick chooses a split by weight; n is a number in [0, 100) (or [0, len)
// when no split has a weight).
func (p *path) pick(n func(int) int) *netv1alpha1.IngressBackendSplit {
	switch {
	case len(p.splits) == 0:
		return nil
	case p.total <= 0:
		return &p.splits[n(len(p.splits))]
	}
	x := n(p.total)
	for i := range p.splits {
		x -= max(p.splits[i].Percent, 0)
		if x < 0 {
			return &p.splits[i]
		}
	}
	return &p.splits[len(p.splits)-1]
}

func randN(n int) int { return rand.IntN(n) }
