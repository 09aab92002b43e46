package sidecar

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

// rawUpstream is a provider written on a bare TCP listener, for answers
// net/http would not send (malformed, reset, oversize), and to see exactly
// which bytes arrive.
type rawUpstream struct {
	ln     net.Listener
	url    string
	conns  atomic.Int64 // accepted
	closed atomic.Int64 // closed by the provider
	mu     sync.Mutex
	got    bytes.Buffer // every byte received, all connections
}

// newRawUpstream serves every connection with handle; what handle reads
// through br is recorded.
func newRawUpstream(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, url: "http://" + ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				handle(c, bufio.NewReader(io.TeeReader(c, u)))
				c.Close()
				u.closed.Add(1)
			}()
		}
	}()
	return u
}

func (u *rawUpstream) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got.Write(p)
}

func (u *rawUpstream) received() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got.String()
}

// rawRoundTrip sends a raw request on a new connection to the sidecar
// and reads one response.
func rawRoundTrip(t *testing.T, ts *testSidecar, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// readRequest reads one request from a raw upstream's connection and
// discards its body.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, r.Body)
	return r, err
}

func TestRelayHopByHopAndForwarded(t *testing.T) {
	var seen atomic.Pointer[http.Request]
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			r, err := readRequest(br)
			if err != nil {
				return
			}
			seen.Store(r)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Resp-Private\r\nX-Resp-Private: 1\r\n"+
				"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTrailer: X-T\r\nX-End-To-End: kept\r\n\r\nok")
		}
	})
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(up.url)}, nil)
	host := strings.TrimPrefix(ts.url, "http://")
	resp, body := rawRoundTrip(t, ts, "GET /v1/invoke/greeter/h?q=1 HTTP/1.1\r\nHost: "+host+"\r\n"+
		"Connection: keep-alive, X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=9\r\nProxy-Authorization: Basic eDp5\r\n"+
		"Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: foo\r\nTrailer: X-T\r\nX-Forwarded-For: 203.0.113.9\r\n"+
		"X-Forwarded-Host: evil.example\r\nForwarded: for=203.0.113.9\r\nX-End-To-End: kept\r\nDdi-Timeout: 5s\r\n"+
		"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ntracestate: congo=t61rcWkgMzE\r\ntracestate: rojo=00f067aa0ba902b7\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("invoke = %d %q, want 200 \"ok\"", resp.StatusCode, body)
	}
	r := seen.Load()
	got := map[string]string{}
	for k := range r.Header {
		got[k] = strings.Join(r.Header[k], " | ")
	}
	want := map[string]string{
		// W3C trace context passes through untouched, both tracestate
		// lines in their order.
		"Traceparent":       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"Tracestate":        "congo=t61rcWkgMzE | rojo=00f067aa0ba902b7",
		"X-End-To-End":      "kept",
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  host,
		"X-Forwarded-Proto": "http",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request fields at the provider (-want +got):\n%s", diff)
	}
	if r.Host != strings.TrimPrefix(up.url, "http://") || r.RequestURI != "/h?q=1" {
		t.Errorf("provider saw Host %q target %q, want %q /h?q=1", r.Host, r.RequestURI, strings.TrimPrefix(up.url, "http://"))
	}
	for _, k := range []string{"X-Resp-Private", "Keep-Alive", "Proxy-Authenticate", "Upgrade", "Trailer"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("caller got hop-by-hop response field %s: %q", k, v)
		}
	}
	if v := resp.Header.Get("X-End-To-End"); v != "kept" {
		t.Errorf("response field X-End-To-End = %q, want kept", v)
	}
}

func TestRelayRefusesSmuggling(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(up.url)}, nil)
	const start = "POST /v1/invoke/greeter/x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	tests := []struct {
		name string
		req  string
		want int
	}{
		{name: "Content-Length and Transfer-Encoding", req: start + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: 400},
		{name: "Transfer-Encoding and Content-Length", req: start + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", want: 400},
		{name: "two different Content-Lengths", req: start + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", want: 400},
		{name: "a Content-Length list", req: start + "Content-Length: 4, 5\r\n\r\nabcde", want: 400},
		{name: "a signed Content-Length", req: start + "Content-Length: +4\r\n\r\nabcd", want: 400},
		{name: "invalid chunk size", req: start + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", want: 400},
		{name: "chunk longer than its size", req: start + "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", want: 400},
		{name: "chunk size line with a bare LF", req: start + "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", want: 400},
		{name: "chunked twice", req: start + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: 501},
		{name: "an unknown transfer coding", req: start + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", want: 501},
		{name: "space before the colon", req: start + "Content-Length : 3\r\n\r\nabc", want: 400},
		{name: "obsolete line folding", req: start + "X-A: 1\r\n folded\r\nContent-Length: 3\r\n\r\nabc", want: 400},
		{name: "no Host", req: "GET /v1/invoke/greeter/x HTTP/1.1\r\n\r\n", want: 400},
		{name: "two Hosts", req: "GET /v1/invoke/greeter/x HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n", want: 400},
		{name: "a bare LF in the head", req: "GET /v1/invoke/greeter/x HTTP/1.1\r\nHost: 127.0.0.1\nX-A: 1\r\n\r\n", want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.received()
			resp, body := rawRoundTrip(t, ts, tt.req)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.want, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			if p := problemOf(t, []byte(body)); p.Detail == "" {
				t.Error("problem without detail")
			}
			if !resp.Close {
				t.Error("the connection stays open after a malformed request, want Connection: close")
			}
			if got := up.received(); got != before {
				t.Errorf("the provider received %q, want nothing", strings.TrimPrefix(got, before))
			}
		})
	}

	t.Run("an invalid chunk after the head was forwarded", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, start+"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
		waitFor(t, "the first chunk at the provider", func() bool { return strings.Contains(up.received(), "3\r\nabc\r\n") })
		io.WriteString(c, "4\r\nSMUGGLEDxx\r\n0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 400 {
			t.Errorf("status = %d, want 400", resp.StatusCode)
		}
		if got := up.received(); strings.Contains(got, "SMUGGLED") {
			t.Errorf("the invalid chunk reached the provider: %q", got)
		}
	})
}

func TestRelayMisbehavingProvider(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(c net.Conn)
		timeout string
		want    int
	}{
		{name: "reset", answer: func(c net.Conn) { c.(*net.TCPConn).SetLinger(0) }, want: 502},
		{name: "close without an answer", answer: func(c net.Conn) {}, want: 502},
		{name: "garbage status line", answer: func(c net.Conn) { io.WriteString(c, "HTTP/1.1 OK 200\r\n\r\n") }, want: 502},
		{name: "not HTTP", answer: func(c net.Conn) { io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n\r\n") }, want: 502},
		{name: "oversize head", answer: func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 2*upstreamHeadBytes)+"\r\n\r\n")
		}, want: 502},
		{name: "Content-Length and Transfer-Encoding", answer: func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		}, want: 502},
		{name: "unasked 101", answer: func(c net.Conn) { io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\n\r\n") }, want: 502},
		{name: "slow headers", answer: func(c net.Conn) { time.Sleep(3 * time.Second) }, timeout: "200ms", want: 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := readRequest(br); err != nil {
					return
				}
				tt.answer(c)
			})
			f := newFakeCP(t)
			ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(up.url)}, nil)
			hdr := ""
			if tt.timeout != "" {
				hdr = "Ddi-Timeout: " + tt.timeout + "\r\n"
			}
			resp, body := rawRoundTrip(t, ts, "POST /v1/invoke/greeter/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"+hdr+"\r\nhi")
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.want, body)
			}
			if p := problemOf(t, []byte(body)); p.Dependency != "greeter" {
				t.Errorf("problem dependency = %q, want greeter", p.Dependency)
			}
			ep := ts.proxy.endpoints.byURL[up.url]
			if ep == nil || ep.failures.Load() != 1 {
				t.Errorf("endpoint failures = %v, want 1 (an outlier mark)", ep)
			}
			if code, _, _ := do(t, "GET", ts.url+"/healthz", ""); code != 200 {
				t.Errorf("healthz after the provider misbehaved = %d, want 200", code)
			}
		})
	}
}

func TestRelayReusesUpstreamConnections(t *testing.T) {
	var news atomic.Int64
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	be.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			news.Add(1)
		}
	}
	be.Start()
	t.Cleanup(be.Close)
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(be.URL)}, nil)
	for i := range 20 {
		method := []string{"GET", "POST"}[i%2]
		if code, body, _ := do(t, method, ts.url+"/v1/invoke/greeter/", "x"); code != 200 || string(body) != "ok" {
			t.Fatalf("%s = %d %s, want 200 ok", method, code, body)
		}
	}
	if n := news.Load(); n != 1 {
		t.Errorf("upstream connections for 20 sequential invocations = %d, want 1", n)
	}

	t.Run("a provider that closes after each answer", func(t *testing.T) {
		// It closes without saying Connection: close, so each kept
		// connection is dead by the next request: safe methods are sent
		// again on a new connection, others go on a checked one.
		up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			if _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		})
		f := newFakeCP(t)
		ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(up.url)}, nil)
		for i := range 20 {
			method := []string{"GET", "POST", "PUT", "DELETE"}[i%4]
			if code, body, _ := do(t, method, ts.url+"/v1/invoke/greeter/", "x"); code != 200 || string(body) != "ok" {
				t.Fatalf("request %d, %s = %d %s, want 200 ok", i, method, code, body)
			}
			// The next request comes once the close happened. (One that
			// comes while the provider is closing can still meet the close:
			// that race is why only safe methods are sent again.)
			waitFor(t, "the provider's close", func() bool { return up.closed.Load() == up.conns.Load() })
		}
		if ep := ts.proxy.endpoints.byURL[up.url]; ep.failures.Load() != 0 {
			t.Errorf("endpoint failures = %d, want 0: a closed idle connection is not the provider's failure", ep.failures.Load())
		}
	})

	t.Run("a restarted provider", func(t *testing.T) {
		// Eight kept connections, all closed by a restart: the next GET
		// finds the first dead and goes on a new connection, not on the
		// next dead one.
		var (
			mu    sync.Mutex
			conns []net.Conn
		)
		up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			for {
				if _, err := readRequest(br); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond) // keep the eight concurrent
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		})
		f := newFakeCP(t)
		ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(up.url)}, nil)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { do(t, "GET", ts.url+"/v1/invoke/greeter/", "") })
		}
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		ep := ts.proxy.endpoints.byURL[up.url]
		ep.conns.mu.Lock()
		idle := len(ep.conns.idle)
		for _, c := range ep.conns.idle {
			c.lastUsed = time.Now() // too recent to be probed: found dead by use
		}
		ep.conns.mu.Unlock()
		if idle < 2 {
			t.Fatalf("idle upstream connections = %d, want several", idle)
		}
		if code, body, _ := do(t, "GET", ts.url+"/v1/invoke/greeter/", ""); code != 200 {
			t.Fatalf("GET after the restart = %d %s, want 200", code, body)
		}
		if n := ep.failures.Load(); n != 0 {
			t.Errorf("endpoint failures = %d, want 0", n)
		}
	})
}

func TestRelayInterimTrailersAndHead(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Checksum"))
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("Content-Length", "")
		if r.Method == "HEAD" {
			w.Header().Set("Content-Length", "1000")
			return
		}
		fmt.Fprintf(w, "got %d bytes", len(body))
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
	}))
	t.Cleanup(be.Close)
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(be.URL)}, nil)

	t.Run("1xx and trailers both ways", func(t *testing.T) {
		var interim []int
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			interim = append(interim, code)
			return nil
		}}
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte("hello"))
			pw.Close()
		}()
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "POST", ts.url+"/v1/invoke/greeter/t", pr)
		req.Trailer = http.Header{"X-Checksum": {"abc"}}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "got 5 bytes" {
			t.Errorf("body = %q, want \"got 5 bytes\"", body)
		}
		if diff := cmp.Diff([]int{103}, interim); diff != "" {
			t.Errorf("interim responses (-want +got):\n%s", diff)
		}
		if got := resp.Trailer.Get("X-Sum"); got != "42" {
			t.Errorf("response trailer X-Sum = %q, want 42", got)
		}
		if got := resp.Header.Get("X-Req-Trailer"); got != "abc" {
			t.Errorf("the provider saw request trailer X-Checksum %q, want abc", got)
		}
	})

	t.Run("HEAD then GET on one connection", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "HEAD /v1/invoke/greeter/h HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /v1/invoke/greeter/h HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		br := bufio.NewReader(c)
		head, err := readFinal(br, &http.Request{Method: "HEAD"})
		if err != nil {
			t.Fatal(err)
		}
		head.Body.Close()
		if head.StatusCode != 200 || head.ContentLength != 1000 {
			t.Errorf("HEAD = %d with Content-Length %d, want 200 with 1000", head.StatusCode, head.ContentLength)
		}
		get, err := readFinal(br, nil)
		if err != nil {
			t.Fatalf("GET after HEAD on the same connection: %v", err)
		}
		body, _ := io.ReadAll(get.Body)
		if get.StatusCode != 200 || string(body) != "got 0 bytes" {
			t.Errorf("GET after HEAD = %d %q, want 200 \"got 0 bytes\"", get.StatusCode, body)
		}
	})

	t.Run("Expect: 100-continue", func(t *testing.T) {
		tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("PUT", ts.url+"/v1/invoke/greeter/e", strings.NewReader("12345678"))
		req.Header.Set("Expect", "100-continue")
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "got 8 bytes" {
			t.Errorf("body = %q, want \"got 8 bytes\"", body)
		}
	})
}

// readFinal reads a response, skipping 1xx ones.
func readFinal(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil || resp.StatusCode >= 200 {
			return resp, err
		}
	}
}

func TestRelayStreamsEvents(t *testing.T) {
	next := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		<-next // the head reaches the caller before any event
		for i := range 3 {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			// The next event is written only once the caller read this
			// one: a relay that held it back would never see it.
			select {
			case <-next:
			case <-time.After(10 * time.Second):
				return
			}
		}
	}))
	t.Cleanup(be.Close)
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{greeterBinding(be.URL)}, nil)
	resp, err := http.Get(ts.url + "/v1/invoke/greeter/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	next <- struct{}{}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		start := time.Now()
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: event %d\n", i) {
			t.Fatalf("event %d = %q, %v", i, line, err)
		}
		t.Logf("event %d after %s", i, time.Since(start))
		if blank, err := br.ReadString('\n'); blank != "\n" {
			t.Fatalf("after event %d: %q, %v, want a blank line", i, blank, err)
		}
		t.Logf("blank %d", i)
		next <- struct{}{}
	}
}
