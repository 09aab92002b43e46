package sidecar

import "net"

// dialAddr is the host:port to dial for e, computed once with the
// endpoint: its URL's host, with the scheme's default port when the URL
// names none (a Knative Service's address is
// http://NAME.NS.svc.cluster.local, without a port).
func (e *endpoint) dialAddr() string { return e.addr }

// hostPort computes dialAddr.
func (e *endpoint) hostPort() string {
	if _, _, err := net.SplitHostPort(e.host); err == nil {
		return e.host
	}
	port := "80"
	if e.scheme == "https" {
		port = "443"
	}
	h := e.host
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return net.JoinHostPort(h, port)
}
