package sidecar

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

// backend is a real upstream that answers with its own name.
type backend struct {
	*httptest.Server
	name string
	hits atomic.Int64
	// status, when set, is the status it answers; delay holds it back.
	status atomic.Int64
	delay  atomic.Int64
	last   atomic.Pointer[http.Request]
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		b.last.Store(r.Clone(r.Context()))
		if d := b.delay.Load(); d > 0 {
			select {
			case <-time.After(time.Duration(d)):
			case <-r.Context().Done():
				return
			}
		}
		if s := b.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		fmt.Fprintf(w, "%s %s %s?%s", b.name, r.Method, r.URL.Path, r.URL.RawQuery)
	}))
	t.Cleanup(b.Close)
	return b
}

// closedURL returns the URL of a loopback port nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func TestInvokeBalancesAndPassesThrough(t *testing.T) {
	f := newFakeCP(t)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(a.URL, b.URL)}, nil)

	seen := map[string]int{}
	for range 10 {
		status, body, _ := do(t, "GET", ts.url+"/v1/invoke/greeter/hello/world?x=1", "")
		if status != 200 {
			t.Fatalf("invoke status = %d, want 200; body %s", status, body)
		}
		name, rest, _ := strings.Cut(string(body), " ")
		if rest != "GET /hello/world?x=1" {
			t.Errorf("backend saw %q, want \"GET /hello/world?x=1\"", rest)
		}
		seen[name]++
	}
	if diff := cmp.Diff(map[string]int{"a": 5, "b": 5}, seen); diff != "" {
		t.Errorf("requests per backend (-want +got):\n%s", diff)
	}

	t.Run("trace headers pass through, Ddi-Timeout does not", func(t *testing.T) {
		const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		status, _, _ := do(t, "POST", ts.url+"/v1/invoke/greeter/", "payload", "traceparent", tp, "tracestate", "ddi=1", "Ddi-Timeout", "5s")
		if status != 200 {
			t.Fatalf("status = %d, want 200", status)
		}
		var last *http.Request
		if a.last.Load() != nil && (b.last.Load() == nil || a.hits.Load() > b.hits.Load()) {
			last = a.last.Load()
		} else {
			last = b.last.Load()
		}
		got := map[string]string{"traceparent": last.Header.Get("traceparent"), "tracestate": last.Header.Get("tracestate"), "Ddi-Timeout": last.Header.Get("Ddi-Timeout")}
		if diff := cmp.Diff(map[string]string{"traceparent": tp, "tracestate": "ddi=1", "Ddi-Timeout": ""}, got); diff != "" {
			t.Errorf("upstream headers (-want +got):\n%s", diff)
		}
	})

	t.Run("no traceparent is invented", func(t *testing.T) {
		do(t, "GET", ts.url+"/v1/invoke/greeter/x", "")
		do(t, "GET", ts.url+"/v1/invoke/greeter/x", "")
		for _, be := range []*backend{a, b} {
			if got := be.last.Load().Header.Get("traceparent"); got != "" {
				t.Errorf("backend %s got traceparent %q, want none", be.name, got)
			}
		}
	})

	t.Run("paths", func(t *testing.T) {
		for _, tt := range []struct{ path, want string }{
			{path: "/v1/invoke/greeter", want: "GET /?"},
			{path: "/v1/invoke/greeter/", want: "GET /?"},
			{path: "/v1/invoke/gr%65eter/x", want: "GET /x?"},
			{path: "/v1/invoke/greeter/a/b/?q=%20", want: "GET /a/b/?q=%20"},
		} {
			status, body, _ := do(t, "GET", ts.url+tt.path, "")
			if _, rest, _ := strings.Cut(string(body), " "); status != 200 || rest != tt.want {
				t.Errorf("GET %s: backend saw %d %q, want 200 %q", tt.path, status, rest, tt.want)
			}
		}
	})

	t.Run("escaped path stays escaped", func(t *testing.T) {
		_, body, _ := do(t, "GET", ts.url+"/v1/invoke/greeter/a%2Fb/c", "")
		if _, rest, _ := strings.Cut(string(body), " "); rest != "GET /a/b/c?" {
			t.Errorf("backend saw %q, want \"GET /a/b/c?\"", rest)
		}
		for _, be := range []*backend{a, b} {
			if r := be.last.Load(); r.URL.Path == "/a/b/c" && r.URL.RawPath != "/a%2Fb/c" {
				t.Errorf("backend %s RawPath = %q, want /a%%2Fb/c", be.name, r.URL.RawPath)
			}
		}
	})
}

func TestInvokeRetries(t *testing.T) {
	tests := []struct {
		method     string
		body       string
		wantFailed int // of 4 requests, alternating between the dead and the live endpoint
	}{
		{method: "GET", wantFailed: 0},
		{method: "HEAD", wantFailed: 0},
		{method: "PUT", body: "x", wantFailed: 0},
		{method: "DELETE", wantFailed: 0},
		{method: "POST", body: "x", wantFailed: 2},
		{method: "PATCH", body: "x", wantFailed: 2},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			f := newFakeCP(t)
			live := newBackend(t, "live")
			ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(closedURL(t), live.URL)}, nil)
			failed := 0
			for range 4 {
				status, body, _ := do(t, tt.method, ts.url+"/v1/invoke/greeter/r", tt.body)
				switch status {
				case 200:
				case 502:
					failed++
					if p := problemOf(t, body); p.Dependency != "greeter" {
						t.Errorf("502 problem dependency = %q, want greeter", p.Dependency)
					}
				default:
					t.Fatalf("status = %d, want 200 or 502; body %s", status, body)
				}
			}
			if failed != tt.wantFailed {
				t.Errorf("%s: failed requests = %d, want %d", tt.method, failed, tt.wantFailed)
			}
			if got := live.hits.Load(); got != int64(4-tt.wantFailed) {
				t.Errorf("live backend hits = %d, want %d", got, 4-tt.wantFailed)
			}
		})
	}
}

func TestInvokeEjectsFailingEndpoint(t *testing.T) {
	f := newFakeCP(t)
	bad, good := newBackend(t, "bad"), newBackend(t, "good")
	bad.status.Store(500)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(bad.URL, good.URL)}, nil)

	for range 10 { // round robin: five to each, the fifth 500 ejects bad
		do(t, "GET", ts.url+"/v1/invoke/greeter/", "")
	}
	if got := bad.hits.Load(); got != ejectAfter {
		t.Fatalf("bad backend hits = %d, want %d before ejection", got, ejectAfter)
	}
	for range 10 {
		status, body, _ := do(t, "GET", ts.url+"/v1/invoke/greeter/", "")
		if status != 200 || !strings.HasPrefix(string(body), "good") {
			t.Errorf("after ejection: %d %s, want 200 from good", status, body)
		}
	}
	if got := bad.hits.Load(); got != ejectAfter {
		t.Errorf("bad backend hits = %d after ejection, want still %d", got, ejectAfter)
	}
	if !strings.Contains(ts.logs.String(), "endpoint ejected") {
		t.Error("no log line about the ejection")
	}
}

func TestEndpointEjectionBackoff(t *testing.T) {
	var e endpoint
	now := time.Unix(1000, 0)
	var got []time.Duration
	for range 8 {
		var d time.Duration
		for range ejectAfter {
			d = e.failed(now)
		}
		got = append(got, d)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ejection durations (-want +got):\n%s", diff)
	}
	e.succeeded()
	for range ejectAfter - 1 {
		if d := e.failed(now); d != 0 {
			t.Fatalf("failed() = %s before %d failures, want 0", d, ejectAfter)
		}
	}
	if d := e.failed(now); d != 10*time.Second {
		t.Errorf("first ejection after a success = %s, want 10s", d)
	}
}

func TestInvokeErrors(t *testing.T) {
	f := newFakeCP(t)
	slow := newBackend(t, "slow")
	slow.delay.Store(int64(2 * time.Second))
	db := dbBinding()
	dead := greeterBinding(closedURL(t))
	dead.Name = "dead"
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(slow.URL), db, dead},
		[]registry.Unresolved{{Name: "cache", Selector: "redis@*", Reason: "no provider has type redis"}})

	tests := []struct {
		name       string
		path       string
		header     []string
		wantStatus int
		wantType   string
		wantField  string
		maxTime    time.Duration
	}{
		{name: "timeout header", path: "/v1/invoke/greeter/", header: []string{"Ddi-Timeout", "100ms"}, wantStatus: 504, wantType: "invoke-timeout", maxTime: 1900 * time.Millisecond},
		{name: "bad timeout header", path: "/v1/invoke/greeter/", header: []string{"Ddi-Timeout", "soon"}, wantStatus: 400, wantType: "invalid-field", wantField: "Ddi-Timeout"},
		{name: "negative timeout header", path: "/v1/invoke/greeter/", header: []string{"Ddi-Timeout", "-1s"}, wantStatus: 400, wantType: "invalid-field", wantField: "Ddi-Timeout"},
		{name: "unresolved", path: "/v1/invoke/cache/", wantStatus: 404, wantType: "unresolved"},
		{name: "unknown", path: "/v1/invoke/nope/x", wantStatus: 404, wantType: "unknown-dependency"},
		{name: "bad name", path: "/v1/invoke/No_Pe/x", wantStatus: 400, wantType: "invalid-field", wantField: "name"},
		{name: "empty name", path: "/v1/invoke/", wantStatus: 400, wantType: "invalid-field", wantField: "name"},
		{name: "dot-dot name", path: "/v1/invoke/../x", wantStatus: 400, wantType: "invalid-field", wantField: "name"},
		{name: "not http", path: "/v1/invoke/db/", wantStatus: 400, wantType: "not-invokable"},
		{name: "connection refused", path: "/v1/invoke/dead/", wantStatus: 502, wantType: "bad-gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			status, body, _ := do(t, "GET", ts.url+tt.path, "", tt.header...)
			if status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", status, tt.wantStatus, body)
			}
			p := problemOf(t, body)
			if got, want := p.Type, "https://ddi.dev/problems/"+tt.wantType; got != want {
				t.Errorf("type = %q, want %q", got, want)
			}
			if p.Field != tt.wantField {
				t.Errorf("field = %q, want %q", p.Field, tt.wantField)
			}
			if strings.Contains(string(body), testSecret) {
				t.Errorf("problem %s leaks the secret", body)
			}
			if tt.maxTime > 0 && time.Since(start) > tt.maxTime {
				t.Errorf("took %s, want at most %s", time.Since(start), tt.maxTime)
			}
		})
	}

	t.Run("all ejected", func(t *testing.T) {
		// Ejection never fails a request by itself: an endpoint that
		// is ejected because nothing else is left is still tried.
		for range ejectAfter {
			do(t, "GET", ts.url+"/v1/invoke/dead/", "")
		}
		status, body, _ := do(t, "GET", ts.url+"/v1/invoke/dead/", "")
		if p := problemOf(t, body); status != 502 || p.Type != "https://ddi.dev/problems/bad-gateway" {
			t.Errorf("status, type = %d, %q, want 502, bad-gateway", status, p.Type)
		}
	})

	t.Run("default timeout", func(t *testing.T) {
		cfg := testConfig(f)
		cfg.InvokeTimeout = 100 * time.Millisecond
		f2 := newFakeCP(t)
		cfg.ControlPlane = f2.srv.URL
		ts2 := startConnected(t, f2, cfg, []registry.Binding{greeterBinding(slow.URL)}, nil)
		status, _, _ := do(t, "GET", ts2.url+"/v1/invoke/greeter/", "")
		if status != 504 {
			t.Errorf("status = %d, want 504", status)
		}
	})
}

func TestInvokeMetrics(t *testing.T) {
	f := newFakeCP(t)
	a := newBackend(t, "a")
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(a.URL)}, nil)
	do(t, "GET", ts.url+"/v1/invoke/greeter/", "")
	a.status.Store(503)
	do(t, "GET", ts.url+"/v1/invoke/greeter/", "")
	_, body, _ := do(t, "GET", ts.url+"/metrics", "")
	for _, want := range []string{
		`ddi_sidecar_invoke_total{dependency="greeter",result="ok"} 1`,
		`ddi_sidecar_invoke_total{dependency="greeter",result="5xx"} 1`,
		`ddi_sidecar_http_requests_total{code="200",route="/v1/invoke/{name}/{path...}"} 1`,
		`ddi_sidecar_http_requests_total{code="503",route="/v1/invoke/{name}/{path...}"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestInvokeUpgrade(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw)
	}))
	t.Cleanup(echo.Close)
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.InvokeTimeout = 100 * time.Millisecond // must not cut the upgraded connection
	ts := startConnected(t, f, cfg, []registry.Binding{greeterBinding(echo.URL)}, nil)

	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /v1/invoke/greeter/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %d, want 101", resp.StatusCode)
	}
	time.Sleep(200 * time.Millisecond) // longer than the invoke timeout
	fmt.Fprint(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Errorf("echo over the upgraded connection = %q, %v, want \"ping\\n\"", line, err)
	}
}
