package httpapi

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// LocalOptions configure LocalOnly.
type LocalOptions struct {
	// Listen is the listener's configured address (host:port). A
	// non-loopback host in it (`ddi dev --allow-remote --listen
	// 192.0.2.7:7470`) is accepted as a Host too; an unspecified one
	// (0.0.0.0, [::]) accepts any IP address as a Host, since only a name
	// can be rebound. A loopback or empty Listen adds nothing.
	Listen string
	// RawBody reports requests whose body is not ddi's JSON (the sidecar's
	// invoke proxy forwards any body): they skip the Content-Type rule.
	RawBody func(*http.Request) bool
}

// LocalOnly guards an API that trusts whoever can reach its loopback
// listener (the sidecar's API, `ddi dev`'s control plane) against web
// pages in a browser on the same machine. It refuses:
//
//   - a Host that is not a loopback name or address (localhost,
//     127.0.0.0/8, [::1], any port) nor the listener's own configured
//     host, with 421: a page whose name was rebound to 127.0.0.1 (DNS
//     rebinding) reaches the listener with its own name as Host;
//   - an Origin header that is not a loopback origin, with 403: browsers
//     send it on cross-site POST, PUT and DELETE and on every fetch;
//   - a request body, or a Content-Type, that is not application/json
//     (parameters allowed), with 415, unless RawBody says the route takes
//     any body: a cross-site text/plain or form POST needs no CORS
//     preflight. A request without a body and without a Content-Type
//     passes (ddi's JSON routes refuse an empty body).
//
// Every refusal is a problem naming the header and what to do instead.
// LocalOnly does not authenticate: a listener reached from the network
// (the controller's stream listener) authenticates its callers instead.
func LocalOnly(next http.Handler, opts LocalOptions) http.Handler {
	g := NewLocalGuard(opts.Listen)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := g.Check(r.Host, r.Header["Origin"]); p != nil {
			WriteProblem(w, p)
			return
		}
		if opts.RawBody == nil || !opts.RawBody(r) {
			ct := r.Header.Get("Content-Type")
			if (ct != "" || r.ContentLength != 0) && !isJSON(ct) {
				p := NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type",
					"Content-Type "+strconv.Quote(ct)+" is not application/json: send the JSON body with the header Content-Type: application/json "+
						"(to 127.0.0.1; ddi's clients and SDK do so)")
				p.Field = "Content-Type"
				WriteProblem(w, p)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// LocalGuard is LocalOnly's Host and Origin rule, for a listener that
// parses requests itself (the sidecar's invoke fast path).
type LocalGuard struct {
	extra string
	anyIP bool
}

// NewLocalGuard returns the guard of a listener configured with listen
// (see LocalOptions.Listen).
func NewLocalGuard(listen string) LocalGuard {
	extra, anyIP := listenHost(listen)
	return LocalGuard{extra: extra, anyIP: anyIP}
}

// Check returns the problem LocalOnly answers for a request with this
// Host header and these Origin values (nil: no Origin header), or nil
// when the request passes.
func (g LocalGuard) Check(hostHeader string, origin []string) *Problem {
	if host := hostOf(hostHeader); !loopbackHost(host) && (g.extra == "" || !strings.EqualFold(host, g.extra)) && !(g.anyIP && isIP(host)) {
		p := NewProblem(http.StatusMisdirectedRequest, "host-not-allowed",
			"Host "+strconv.Quote(hostHeader)+" is not a loopback name or address: this API answers only requests addressed to localhost, 127.0.0.1 or [::1], "+
				"so that a web page whose name resolves to this machine (DNS rebinding) cannot call it; call it at http://127.0.0.1:PORT or http://localhost:PORT"+
				listenHint(g.extra, g.anyIP))
		p.Field = "Host"
		return p
	}
	if origin != nil && !loopbackOrigin(origin) {
		p := NewProblem(http.StatusForbidden, "cross-origin",
			"Origin "+strconv.Quote(strings.Join(origin, ", "))+" is not a loopback origin: this API refuses requests from web pages of other sites; "+
				"call it from the function, the SDK or the ddi CLI (at http://127.0.0.1:PORT), which send no Origin")
		p.Field = "Origin"
		return p
	}
	return nil
}

// listenHost returns the host of a listen address that LocalOnly accepts
// besides loopback, and whether the address is unspecified.
func listenHost(listen string) (host string, anyIP bool) {
	h, _, err := net.SplitHostPort(listen)
	if err != nil {
		h = listen
	}
	if h == "" {
		return "", listen != ""
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		return "", true
	}
	if loopbackHost(h) {
		return "", false
	}
	return h, false
}

func listenHint(extra string, anyIP bool) string {
	switch {
	case anyIP:
		return ", or at this machine's IP address"
	case extra != "":
		return ", or at " + extra
	}
	return ""
}

// hostOf returns the host of a Host header (without port or brackets).
func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// isIP reports whether host is an IP address, without allocating.
func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	// netip, not net.ParseIP: every request passes here, and netip does
	// not allocate.
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// loopbackOrigin reports whether an Origin header names one http(s)
// origin on a loopback host ("null", the opaque origin, does not).
func loopbackOrigin(values []string) bool {
	if len(values) != 1 {
		return false
	}
	u, err := url.Parse(values[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || (u.Path != "" && u.Path != "/") {
		return false
	}
	return loopbackHost(u.Hostname())
}

// isJSON reports whether a Content-Type is application/json, with or
// without parameters.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}
