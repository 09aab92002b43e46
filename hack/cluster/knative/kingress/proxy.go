package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corelisters "k8s.io/client-go/listers/core/v1"
	netv1alpha1 "knative.dev/networking/pkg/apis/networking/v1alpha1"
)

// targetKey carries the routing decision from ServeHTTP to Rewrite through
// the request context.
type targetKey struct{}

type target struct {
	addr  string
	h2c   bool // the backend port speaks HTTP/2 without TLS
	route *path
	split *netv1alpha1.IngressBackendSplit
}

// proxy serves one listener: it routes each request by the current table and
// forwards it to a ready endpoint of the chosen split's Service.
type proxy struct {
	log       *slog.Logger
	public    bool
	table     *atomic.Pointer[table]
	services  corelisters.ServiceLister
	endpoints corelisters.EndpointsLister
	rp        *httputil.ReverseProxy
}

func newProxy(log *slog.Logger, public bool, t *atomic.Pointer[table], svc corelisters.ServiceLister, eps corelisters.EndpointsLister) *proxy {
	p := &proxy{log: log, public: public, table: t, services: svc, endpoints: eps}
	h1 := http.DefaultTransport.(*http.Transport).Clone()
	h1.Proxy = nil
	h1.MaxIdleConnsPerHost = 100
	h2c := h1.Clone()
	h2c.Protocols = new(http.Protocols)
	h2c.Protocols.SetUnencryptedHTTP2(true)
	p.rp = &httputil.ReverseProxy{
		Rewrite:       rewrite,
		FlushInterval: -1,
		// The backend Service port, not the client, decides the protocol:
		// Knative names h2c ports "http2" (appProtocol kubernetes.io/h2c).
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if t, ok := r.Context().Value(targetKey{}).(*target); ok && t.h2c {
				return h2c.RoundTrip(r)
			}
			return h1.RoundTrip(r)
		}),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("proxy error", "host", r.Host, "backend", r.URL.Host, "err", err)
			http.Error(w, "kingress: backend unavailable: "+err.Error(), http.StatusBadGateway)
		},
	}
	return p
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := p.table.Load()
	if t == nil {
		http.Error(w, "kingress: not synced yet", http.StatusServiceUnavailable)
		return
	}
	route := t.match(r, p.public)
	if route == nil {
		http.Error(w, fmt.Sprintf("kingress: no route for host %q", r.Host), http.StatusNotFound)
		return
	}
	split := route.pick(randN)
	if split == nil {
		http.Error(w, "kingress: route has no backend", http.StatusServiceUnavailable)
		return
	}
	addr, h2c, err := p.resolve(split.IngressBackend)
	if err != nil {
		p.log.Warn("no backend", "host", r.Host, "ingress", route.ingress,
			"service", split.ServiceNamespace+"/"+split.ServiceName, "err", err)
		http.Error(w, "kingress: "+err.Error(), http.StatusServiceUnavailable)
		return
	}

	ctx := context.WithValue(r.Context(), targetKey{}, &target{addr: addr, h2c: h2c, route: route, split: split})
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// rewrite prepares the outgoing request: the chosen endpoint, the rewritten
// host if any, the headers the KIngress appends, and X-Forwarded-*.
func rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(*target)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = t.addr
	if t.route.rewriteHost != "" {
		pr.Out.Host = t.route.rewriteHost
	}
	for k, v := range t.route.appendHeaders {
		pr.Out.Header.Set(k, v)
	}
	for k, v := range t.split.AppendHeaders {
		pr.Out.Header.Set(k, v)
	}
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
}

var errNoEndpoints = errors.New("no ready endpoints")

// resolve returns host:port of a ready endpoint behind the backend's
// Service port (or the Service's cluster IP when it has no Endpoints
// object), and whether that port speaks h2c.
func (p *proxy) resolve(b netv1alpha1.IngressBackend) (string, bool, error) {
	svc, err := p.services.Services(b.ServiceNamespace).Get(b.ServiceName)
	if err != nil {
		return "", false, fmt.Errorf("service %s/%s: %w", b.ServiceNamespace, b.ServiceName, err)
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		port := &svc.Spec.Ports[i]
		if (b.ServicePort.Type == 0 && port.Port == b.ServicePort.IntVal) ||
			(b.ServicePort.Type == 1 && port.Name == b.ServicePort.StrVal) {
			sp = port
			break
		}
	}
	if sp == nil {
		return "", false, fmt.Errorf("service %s/%s has no port %s", b.ServiceNamespace, b.ServiceName, b.ServicePort.String())
	}
	h2c := sp.Name == "http2" || sp.Name == "h2c" || (sp.AppProtocol != nil && *sp.AppProtocol == "kubernetes.io/h2c")
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return net.JoinHostPort(svc.Spec.ExternalName, strconv.Itoa(int(sp.Port))), h2c, nil
	}
	eps, err := p.endpoints.Endpoints(b.ServiceNamespace).Get(b.ServiceName)
	if apierrors.IsNotFound(err) && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(sp.Port))), h2c, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("endpoints %s/%s: %w", b.ServiceNamespace, b.ServiceName, err)
	}
	var addrs []string
	for _, ss := range eps.Subsets {
		port := int32(-1)
		for _, ep := range ss.Ports {
			if ep.Name == sp.Name || (len(ss.Ports) == 1 && sp.Name == "") {
				port = ep.Port
				break
			}
		}
		if port < 0 {
			continue
		}
		for _, a := range ss.Addresses {
			addrs = append(addrs, net.JoinHostPort(a.IP, strconv.Itoa(int(port))))
		}
	}
	if len(addrs) == 0 {
		return "", false, fmt.Errorf("service %s/%s port %s: %w", b.ServiceNamespace, b.ServiceName, b.ServicePort.String(), errNoEndpoints)
	}
	return addrs[rand.IntN(len(addrs))], h2c, nil
}
