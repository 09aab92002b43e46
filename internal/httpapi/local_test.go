package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ddi.dev/ddi/internal/httpapi"
)

func TestLocalOnly(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	raw := func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/raw/") }
	tests := []struct {
		name       string
		listen     string
		method     string
		path       string
		host       string
		header     map[string]string
		body       string
		wantStatus int
		wantField  string
	}{
		{name: "loopback", listen: "127.0.0.1:7471", host: "127.0.0.1:7471", wantStatus: 204},
		{name: "loopback, another port", listen: "127.0.0.1:7471", host: "127.9.9.9:1", wantStatus: 204},
		{name: "localhost in capitals", listen: "127.0.0.1:7471", host: "LOCALHOST:7471", wantStatus: 204},
		{name: "IPv6 loopback without a port", listen: "[::1]:7471", host: "[::1]", wantStatus: 204},
		{name: "empty Host", listen: "127.0.0.1:7471", host: "", wantStatus: 421, wantField: "Host"},
		{name: "a name", listen: "127.0.0.1:7471", host: "rebind.example", wantStatus: 421, wantField: "Host"},
		{name: "a subdomain of localhost", listen: "127.0.0.1:7471", host: "a.localhost", wantStatus: 421, wantField: "Host"},
		{name: "explicit listen host", listen: "192.0.2.7:7470", host: "192.0.2.7:7470", wantStatus: 204},
		{name: "explicit listen name", listen: "devbox.lan:7470", host: "DEVBOX.lan:7470", wantStatus: 204},
		{name: "explicit listen host keeps loopback", listen: "192.0.2.7:7470", host: "localhost:7470", wantStatus: 204},
		{name: "explicit listen host refuses other names", listen: "192.0.2.7:7470", host: "rebind.example:7470", wantStatus: 421, wantField: "Host"},
		{name: "explicit listen host refuses other addresses", listen: "192.0.2.7:7470", host: "192.0.2.8:7470", wantStatus: 421, wantField: "Host"},
		{name: "unspecified listen accepts an address", listen: "0.0.0.0:7470", host: "192.0.2.8:7470", wantStatus: 204},
		{name: "unspecified IPv6 listen accepts an address", listen: "[::]:7470", host: "[2001:db8::1]:7470", wantStatus: 204},
		{name: "empty listen host accepts an address", listen: ":7470", host: "192.0.2.8:7470", wantStatus: 204},
		{name: "unspecified listen refuses a name", listen: "0.0.0.0:7470", host: "rebind.example:7470", wantStatus: 421, wantField: "Host"},
		{name: "loopback origin", host: "127.0.0.1", header: map[string]string{"Origin": "http://127.0.0.1:3000"}, wantStatus: 204},
		{name: "https localhost origin", host: "127.0.0.1", header: map[string]string{"Origin": "https://localhost"}, wantStatus: 204},
		{name: "cross-site origin", host: "127.0.0.1", header: map[string]string{"Origin": "https://site.example"}, wantStatus: 403, wantField: "Origin"},
		{name: "opaque origin", host: "127.0.0.1", header: map[string]string{"Origin": "null"}, wantStatus: 403, wantField: "Origin"},
		{name: "empty origin", host: "127.0.0.1", header: map[string]string{"Origin": ""}, wantStatus: 403, wantField: "Origin"},
		{name: "file origin", host: "127.0.0.1", header: map[string]string{"Origin": "file://"}, wantStatus: 403, wantField: "Origin"},
		{name: "origin of the explicit listen host", listen: "192.0.2.7:7470", host: "192.0.2.7:7470", header: map[string]string{"Origin": "http://192.0.2.7:7470"}, wantStatus: 403, wantField: "Origin"},
		{name: "JSON body", method: "POST", host: "127.0.0.1", header: map[string]string{"Content-Type": "application/json"}, body: "{}", wantStatus: 204},
		{name: "JSON with charset", method: "PUT", host: "127.0.0.1", header: map[string]string{"Content-Type": "application/json; charset=utf-8"}, body: "{}", wantStatus: 204},
		{name: "text body", method: "POST", host: "127.0.0.1", header: map[string]string{"Content-Type": "text/plain"}, body: "{}", wantStatus: 415, wantField: "Content-Type"},
		{name: "multipart body", method: "POST", host: "127.0.0.1", header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, body: "{}", wantStatus: 415, wantField: "Content-Type"},
		{name: "body without a type", method: "POST", host: "127.0.0.1", body: "{}", wantStatus: 415, wantField: "Content-Type"},
		{name: "text type without a body", method: "POST", host: "127.0.0.1", header: map[string]string{"Content-Type": "text/plain"}, wantStatus: 415, wantField: "Content-Type"},
		{name: "no body, no type", method: "DELETE", host: "127.0.0.1", wantStatus: 204},
		{name: "raw route takes any body", method: "POST", path: "/raw/x", host: "127.0.0.1", header: map[string]string{"Content-Type": "text/plain"}, body: "x", wantStatus: 204},
		{name: "raw route still checks Host", method: "POST", path: "/raw/x", host: "rebind.example", body: "x", wantStatus: 421, wantField: "Host"},
		{name: "raw route still checks Origin", method: "POST", path: "/raw/x", host: "127.0.0.1", header: map[string]string{"Origin": "https://site.example"}, body: "x", wantStatus: 403, wantField: "Origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path := tt.method, tt.path
			if method == "" {
				method = http.MethodGet
			}
			if path == "" {
				path = "/v1/x"
			}
			r := httptest.NewRequest(method, path, strings.NewReader(tt.body))
			r.Host = tt.host
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			httpapi.LocalOnly(ok, httpapi.LocalOptions{Listen: tt.listen, RawBody: raw}).ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("%s %s Host %q = %d, want %d; body %s", method, path, tt.host, w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantField == "" {
				return
			}
			var p httpapi.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Field != tt.wantField || p.Status != tt.wantStatus {
				t.Errorf("problem = %s (%v), want status %d naming %s", w.Body, err, tt.wantStatus, tt.wantField)
			}
		})
	}
}

// TestLocalOnlyDoesNotAllocate: the guard runs before every resolve and
// invoke, the sidecar's hot paths; admitting a loopback request allocates
// nothing.
func TestLocalOnlyDoesNotAllocate(t *testing.T) {
	h := httpapi.LocalOnly(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), httpapi.LocalOptions{Listen: "127.0.0.1:7471"})
	for _, host := range []string{"127.0.0.1:7471", "localhost:7471", "[::1]:7471"} {
		r := httptest.NewRequest(http.MethodGet, "http://"+host+"/v1/bindings/db", nil)
		w := httptest.NewRecorder()
		if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); n != 0 {
			t.Errorf("LocalOnly admitting Host %s: %v allocations per request, want 0", host, n)
		}
	}
}
