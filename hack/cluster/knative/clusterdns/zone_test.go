package main

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

func testZone(t *testing.T) *zone {
	t.Helper()
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	svcs, eps := idx(), idx()
	ready, notReady := true, false
	host := "web-0"
	for _, o := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "api"}, Spec: corev1.ServiceSpec{ClusterIP: "10.217.1.10", ClusterIPs: []string{"10.217.1.10"}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "api.default.svc.cluster.local"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
	} {
		if err := svcs.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	if err := eps.Add(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "apps", Name: "web-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.217.0.7"}, Hostname: &host, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.217.0.8"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.217.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: &notReady}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	return &zone{domain: "cluster.local", ttl: 5, services: corelisters.NewServiceLister(svcs), slices: discoverylisters.NewEndpointSliceLister(eps)}
}

func TestZoneLookup(t *testing.T) {
	z := testZone(t)
	tests := []struct {
		name      string
		query     string
		wantOK    bool
		wantCNAME string
		wantIPs   []string
	}{
		{name: "cluster IP", query: "api.default.svc.cluster.local.", wantOK: true, wantIPs: []string{"10.217.1.10"}},
		{name: "external name", query: "hello.default.svc.cluster.local.", wantOK: true, wantCNAME: "api.default.svc.cluster.local."},
		{name: "headless, ready endpoints only", query: "web.apps.svc.cluster.local.", wantOK: true, wantIPs: []string{"10.217.0.7", "10.217.0.8"}},
		{name: "headless hostname", query: "web-0.web.apps.svc.cluster.local.", wantOK: true, wantIPs: []string{"10.217.0.7"}},
		{name: "unknown hostname", query: "web-1.web.apps.svc.cluster.local.", wantOK: false},
		{name: "pod", query: "10-217-0-4.default.pod.cluster.local.", wantOK: true, wantIPs: []string{"10.217.0.4"}},
		{name: "unknown service", query: "nope.default.svc.cluster.local.", wantOK: false},
		{name: "search-list miss", query: "api.default.svc.cluster.local.default.svc.cluster.local.", wantOK: false},
		{name: "outside the zone", query: "example.com.", wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := z.lookup(tc.query)
			var ips []string
			for _, ip := range got.ipv4 {
				ips = append(ips, ip.String())
			}
			slices.Sort(ips)
			if ok != tc.wantOK || got.cname != tc.wantCNAME || !slices.Equal(ips, tc.wantIPs) {
				t.Errorf("lookup(%q) = (cname %q, ips %v, ok %v), want (cname %q, ips %v, ok %v)",
					tc.query, got.cname, ips, ok, tc.wantCNAME, tc.wantIPs, tc.wantOK)
			}
		})
	}
}

func TestServerFollowsCNAME(t *testing.T) {
	s := &server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), zone: testZone(t)}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("hello.default.svc.cluster.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	req, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	var msg dnsmessage.Message
	if err := msg.Unpack(s.handle(req, 512)); err != nil {
		t.Fatalf("unpack reply: %v", err)
	}
	if msg.ID != 7 || msg.RCode != dnsmessage.RCodeSuccess || len(msg.Answers) != 2 {
		t.Fatalf("reply = id %d rcode %v answers %d, want id 7, success, 2 answers", msg.ID, msg.RCode, len(msg.Answers))
	}
	a, ok := msg.Answers[1].Body.(*dnsmessage.AResource)
	if !ok || netip.AddrFrom4(a.A).String() != "10.217.1.10" {
		t.Errorf("second answer = %v, want A 10.217.1.10", msg.Answers[1].Body)
	}

	b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 8})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("example.com."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	req, _ = b.Finish()
	if err := msg.Unpack(s.handle(req, 512)); err != nil {
		t.Fatalf("unpack reply: %v", err)
	}
	if msg.RCode != dnsmessage.RCodeNameError {
		t.Errorf("rcode for example.com = %v, want NXDOMAIN", msg.RCode)
	}
}
