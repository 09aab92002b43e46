package main

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
)

// zone looks names of the cluster domain up in the informers' caches.
type zone struct {
	domain   string
	ttl      uint32
	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
}

// answer is what a name resolves to: a CNAME target, or IPv4 addresses.
type answer struct {
	cname string
	ipv4  []netip.Addr
}

// inZone reports whether name (lower case, with the trailing dot) is in the
// cluster domain, and returns its labels before the domain.
func (z *zone) inZone(name string) ([]string, bool) {
	suffix := "." + z.domain + "."
	if !strings.HasSuffix(name, suffix) {
		return nil, false
	}
	return strings.Split(strings.TrimSuffix(name, suffix), "."), true
}

// lookup resolves name; ok is false when the name does not exist.
func (z *zone) lookup(name string) (answer, bool) {
	labels, in := z.inZone(name)
	if !in {
		return answer{}, false
	}
	switch {
	case len(labels) == 3 && labels[2] == "svc":
		return z.service(labels[1], labels[0], "")
	case len(labels) == 4 && labels[3] == "svc":
		return z.service(labels[2], labels[1], labels[0])
	case len(labels) == 3 && labels[2] == "pod":
		ip, err := netip.ParseAddr(strings.ReplaceAll(labels[0], "-", "."))
		if err != nil || !ip.Is4() {
			return answer{}, false
		}
		return answer{ipv4: []netip.Addr{ip}}, true
	}
	return answer{}, false
}

func (z *zone) service(ns, name, hostname string) (answer, bool) {
	svc, err := z.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) || err != nil {
		return answer{}, false
	}
	if hostname == "" {
		switch {
		case svc.Spec.Type == corev1.ServiceTypeExternalName:
			return answer{cname: strings.ToLower(strings.TrimSuffix(svc.Spec.ExternalName, ".")) + "."}, true
		case svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone:
			var a answer
			for _, ip := range svc.Spec.ClusterIPs {
				if addr, err := netip.ParseAddr(ip); err == nil && addr.Is4() {
					a.ipv4 = append(a.ipv4, addr)
				}
			}
			return a, true
		}
	}
	// Headless: the ready endpoints, or the one named hostname.
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
	slices, err := z.slices.EndpointSlices(ns).List(sel)
	if err != nil {
		return answer{}, false
	}
	var a answer
	seen := map[netip.Addr]bool{}
	found := hostname == ""
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if hostname != "" && (ep.Hostname == nil || *ep.Hostname != hostname) {
				continue
			}
			found = true
			for _, ip := range ep.Addresses {
				if addr, err := netip.ParseAddr(ip); err == nil && !seen[addr] {
					seen[addr] = true
					a.ipv4 = append(a.ipv4, addr)
				}
			}
		}
	}
	return a, found
}
