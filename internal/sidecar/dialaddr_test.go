package sidecar

import (
	"net/url"
	"testing"
)

func TestDialAddrAddsTheSchemesPort(t *testing.T) {
	for _, tt := range []struct{ scheme, host, want string }{
		{"http", "greeter.ddi-demo.svc.cluster.local", "greeter.ddi-demo.svc.cluster.local:80"},
		{"https", "greeter.example.com", "greeter.example.com:443"},
		{"http", "127.0.0.1:8080", "127.0.0.1:8080"},
		{"http", "[::1]", "[::1]:80"},
		{"http", "[::1]:9000", "[::1]:9000"},
	} {
		e := newEndpoint(tt.scheme+"://"+tt.host, &url.URL{Scheme: tt.scheme, Host: tt.host})
		if got := e.dialAddr(); got != tt.want {
			t.Errorf("dialAddr() of %s://%s = %q, want %q", tt.scheme, tt.host, got, tt.want)
		}
	}
}
