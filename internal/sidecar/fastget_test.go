package sidecar

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// TestFastGetAnswersAsTheAPI checks that GET /v1/bindings/{name} answered
// on the fast path is byte for byte what the API's handler answers through
// net/http (a target with an empty query goes there), keeps the
// connection, counts under the route's metrics, and that every request it
// does not take (another host, a Content-Type, a body, an unknown name,
// HEAD, an escape) still gets the API's own answer.
func TestFastGetAnswersAsTheAPI(t *testing.T) {
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding("http://127.0.0.1:9")}, nil)
	host := strings.TrimPrefix(ts.url, "http://")

	h0 := ts.handoffs.Load()
	fast, fastBody := rawRoundTrip(t, ts, "GET /v1/bindings/greeter HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if n := ts.handoffs.Load() - h0; n != 0 {
		t.Errorf("GET /v1/bindings/greeter was handed to net/http (%d connections): the fast path should answer it", n)
	}
	slow, slowBody := rawRoundTrip(t, ts, "GET /v1/bindings/greeter? HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if n := ts.handoffs.Load() - h0; n != 1 {
		t.Errorf("GET /v1/bindings/greeter? went to net/http on %d connections, want 1", n)
	}
	if fast.StatusCode != 200 || fastBody != slowBody || !strings.Contains(fastBody, `"greeter"`) {
		t.Fatalf("fast path %d %q, net/http %d %q: want the same 200 binding", fast.StatusCode, fastBody, slow.StatusCode, slowBody)
	}
	for _, k := range []string{"Content-Type", "Content-Length", "Cache-Control"} {
		if fast.Header.Get(k) != slow.Header.Get(k) {
			t.Errorf("header %s: fast path %q, net/http %q", k, fast.Header.Get(k), slow.Header.Get(k))
		}
	}
	if d, err := http.ParseTime(fast.Header.Get("Date")); err != nil || time.Since(d) > time.Minute {
		t.Errorf("fast path Date %q: %v", fast.Header.Get("Date"), err)
	}
	if len(fast.Header) != len(slow.Header) {
		t.Errorf("fast path headers %v, net/http %v", fast.Header, slow.Header)
	}

	// Three on one connection, the last with Connection: close.
	before, h1 := routeCount(t, ts, "GET /v1/bindings/{name}"), ts.handoffs.Load()
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i, extra := range []string{"", "", "Connection: close\r\n"} {
		if _, err := io.WriteString(c, "GET /v1/bindings/greeter HTTP/1.1\r\nHost: localhost\r\n"+extra+"\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on one connection: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != fastBody {
			t.Errorf("request %d on one connection = %d %q", i, resp.StatusCode, b)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close the sidecar kept the connection open (read: %v)", err)
	}
	if n := ts.handoffs.Load() - h1; n != 0 {
		t.Errorf("%d of the keep-alive connection's requests went to net/http", n)
	}
	if after := routeCount(t, ts, "GET /v1/bindings/{name}"); after-before != 3 {
		t.Errorf("route GET /v1/bindings/{name} counted %v requests for 3", after-before)
	}

	for _, c := range []struct {
		req  string
		code int
	}{
		{"GET /v1/bindings/greeter HTTP/1.1\r\nHost: evil.example\r\n\r\n", http.StatusMisdirectedRequest},
		{"GET /v1/bindings/greeter HTTP/1.1\r\nHost: " + host + "\r\nOrigin: https://evil.example\r\n\r\n", http.StatusForbidden},
		{"GET /v1/bindings/greeter HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: text/plain\r\n\r\n", http.StatusUnsupportedMediaType},
		{"GET /v1/bindings/greeter HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 2\r\n\r\n{}", http.StatusUnsupportedMediaType},
		{"GET /v1/bindings/nothere HTTP/1.1\r\nHost: " + host + "\r\n\r\n", http.StatusNotFound},
		{"GET /v1/bindings/Greeter HTTP/1.1\r\nHost: " + host + "\r\n\r\n", http.StatusBadRequest},
		{"GET /v1/bindings/gr%65eter HTTP/1.1\r\nHost: " + host + "\r\n\r\n", http.StatusOK},
		{"HEAD /v1/bindings/greeter HTTP/1.1\r\nHost: " + host + "\r\n\r\n", http.StatusOK},
	} {
		var resp *http.Response
		if strings.HasPrefix(c.req, "HEAD") {
			cn, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(cn, c.req)
			resp, err = http.ReadResponse(bufio.NewReader(cn), &http.Request{Method: http.MethodHead})
			cn.Close()
			if err != nil {
				t.Fatal(err)
			}
		} else {
			resp, _ = rawRoundTrip(t, ts, c.req)
		}
		if resp.StatusCode != c.code {
			t.Errorf("%q = %d, want %d", strings.SplitN(c.req, "\r\n", 2)[0], resp.StatusCode, c.code)
		}
	}
}

// routeCount reads the sidecar's request counter of a route, all codes.
func routeCount(t *testing.T, ts *testSidecar, route string) float64 {
	t.Helper()
	var n float64
	mfs, err := ts.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ddi_sidecar_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == route {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
