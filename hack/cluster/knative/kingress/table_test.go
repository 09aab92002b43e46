package main

import (
	"net/http/httptest"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	netv1alpha1 "knative.dev/networking/pkg/apis/networking/v1alpha1"
)

func split(name string, percent int) netv1alpha1.IngressBackendSplit {
	return netv1alpha1.IngressBackendSplit{
		IngressBackend: netv1alpha1.IngressBackend{ServiceNamespace: "default", ServiceName: name, ServicePort: intstr.FromInt(80)},
		Percent:        percent,
		AppendHeaders:  map[string]string{"Knative-Serving-Revision": name},
	}
}

func testIngress() *netv1alpha1.Ingress {
	return &netv1alpha1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello"},
		Spec: netv1alpha1.IngressSpec{Rules: []netv1alpha1.IngressRule{
			{
				Hosts:      []string{"hello.default.example.com"},
				Visibility: netv1alpha1.IngressVisibilityExternalIP,
				HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{
					{Headers: map[string]netv1alpha1.HeaderMatch{"knative-serving-tag": {Exact: "blue"}}, Splits: []netv1alpha1.IngressBackendSplit{split("hello-blue", 100)}},
					{Splits: []netv1alpha1.IngressBackendSplit{split("hello-00001", 100)}},
				}},
			},
			{
				Hosts:      []string{"hello.default", "hello.default.svc.cluster.local"},
				Visibility: netv1alpha1.IngressVisibilityClusterLocal,
				HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{
					{Path: "/api", Splits: []netv1alpha1.IngressBackendSplit{split("hello-api", 100)}},
					{Splits: []netv1alpha1.IngressBackendSplit{split("hello-00001", 100)}},
				}},
			},
		}},
	}
}

func TestTableMatch(t *testing.T) {
	tbl := buildTable([]*netv1alpha1.Ingress{testIngress()})
	tests := []struct {
		name    string
		host    string
		path    string
		headers map[string]string
		public  bool
		want    string // service name of the first split, "" for no route
	}{
		{name: "public host", host: "hello.default.example.com", path: "/", public: true, want: "hello-00001"},
		{name: "public host with port, any case", host: "Hello.Default.Example.com:31080", path: "/x", public: true, want: "hello-00001"},
		{name: "header match", host: "hello.default.example.com", headers: map[string]string{"Knative-Serving-Tag": "blue"}, public: true, want: "hello-blue"},
		{name: "header mismatch falls through", host: "hello.default.example.com", headers: map[string]string{"Knative-Serving-Tag": "green"}, public: true, want: "hello-00001"},
		{name: "cluster-local host not public", host: "hello.default.svc.cluster.local", public: true, want: ""},
		{name: "cluster-local host internal", host: "hello.default.svc.cluster.local", path: "/", want: "hello-00001"},
		{name: "path prefix", host: "hello.default", path: "/api/v1", want: "hello-api"},
		{name: "public host internal too", host: "hello.default.example.com", path: "/", want: "hello-00001"},
		{name: "unknown host", host: "nope.example.com", public: true, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = "/"
			}
			r := httptest.NewRequest("GET", "http://"+tc.host+p, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			got := ""
			if m := tbl.match(r, tc.public); m != nil {
				got = m.splits[0].ServiceName
			}
			if got != tc.want {
				t.Errorf("match(%s%s, public=%v) = %q, want %q", tc.host, p, tc.public, got, tc.want)
			}
		})
	}
}

func TestPathPick(t *testing.T) {
	p := &path{splits: []netv1alpha1.IngressBackendSplit{split("a", 10), split("b", 90)}, total: 100}
	tests := []struct {
		name string
		n    int
		want string
	}{
		{name: "low end", n: 0, want: "a"},
		{name: "last of first split", n: 9, want: "a"},
		{name: "first of second split", n: 10, want: "b"},
		{name: "high end", n: 99, want: "b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := p.pick(func(int) int { return tc.n }).ServiceName
			if got != tc.want {
				t.Errorf("pick(%d) = %q, want %q", tc.n, got, tc.want)
			}
		})
	}
}
