package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"ddi.dev/ddi/internal/httpapi"
)

// The invoke fast path (docs/invoke.md). The sidecar's listener is
// accepted here first. A connection whose requests are HTTP/1.1
// invocations of http endpoints is served by a relay that parses the
// request itself and forwards it on a pooled, kept-alive upstream
// connection, in the connection's own goroutine: no http.Server
// per-request machinery, no http.Transport goroutines, usually one read
// and one write system call on each side. Everything else (the API
// routes, upgrades such as WebSocket, HTTP/1.0, https endpoints, heads
// larger than the relay's buffer) is handed, with the bytes already
// read, to the http.Server and its ReverseProxy, for the rest of that
// connection's life.

const (
	clientBufSize     = 8 << 10  // a request head larger than this goes to net/http
	relayBufSize      = 32 << 10 // body copy buffer
	idleTimeout       = 2 * time.Minute
	readHeaderTimeout = 10 * time.Second
	refuseTimeout     = 5 * time.Second
)

// fastServer accepts the sidecar's connections; as a net.Listener it
// yields the connections it hands to the http.Server.
type fastServer struct {
	s     *Sidecar
	ln    net.Listener
	guard httpapi.LocalGuard
	route *route
	log   *slog.Logger

	handoffs  chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	closing   atomic.Bool
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     map[*fastConn]struct{}
}

func newFastServer(s *Sidecar, ln net.Listener) *fastServer {
	return &fastServer{s: s, ln: ln, guard: httpapi.NewLocalGuard(s.cfg.Listen), route: s.invokeRoute,
		log: s.log.With("component", "invoke"), handoffs: make(chan net.Conn), done: make(chan struct{}),
		conns: map[*fastConn]struct{}{}}
}

// Accept returns the next connection handed to net/http.
func (fs *fastServer) Accept() (net.Conn, error) {
	select {
	case c := <-fs.handoffs:
		return c, nil
	case <-fs.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting: the real listener closes.
func (fs *fastServer) Close() error {
	fs.closeOnce.Do(func() {
		close(fs.done)
		_ = fs.ln.Close()
	})
	return nil
}

// Addr is the real listener's address.
func (fs *fastServer) Addr() net.Addr { return fs.ln.Addr() }

// acceptLoop accepts until Close, retrying temporary errors (such as too
// many open files) with a growing pause.
func (fs *fastServer) acceptLoop() {
	var pause time.Duration
	for {
		c, err := fs.ln.Accept()
		if err != nil {
			select {
			case <-fs.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			fs.log.Warn("accept failed; retrying", "err", err, "in", pause)
			select {
			case <-time.After(pause):
			case <-fs.done:
				return
			}
			continue
		}
		pause = 0
		fs.wg.Add(1)
		go fs.serve(c)
	}
}

// shutdown ends idle connections at once and waits for busy ones to
// finish their request, until ctx ends; then it closes the rest.
func (fs *fastServer) shutdown(ctx interface{ Done() <-chan struct{} }) {
	fs.closing.Store(true)
	fs.mu.Lock()
	for fc := range fs.conns {
		if fc.idle.Load() {
			_ = fc.c.SetReadDeadline(time.Now())
		}
	}
	fs.mu.Unlock()
	done := make(chan struct{})
	go func() { fs.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	fs.mu.Lock()
	for fc := range fs.conns {
		_ = fc.c.Close()
	}
	fs.mu.Unlock()
	<-done
}

// fastConn is one client connection on the fast path, with its buffers.
type fastConn struct {
	fs       *fastServer
	c        net.Conn
	br       *bufio.Reader
	remoteIP string
	idle     atomic.Bool

	req, resp head
	hbuf      []byte // copy of the request head; req's slices point here
	out       []byte // bytes being assembled for one write
	body      []byte // the request body copier's buffer
	rbuf      []byte // the response body relay's buffer
	cr        chunkedReader
	traced    bool        // trace holds the trace context sent upstream
	trace     traceFields // (trace.go)
}

var clientReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, clientBufSize) }}

// action is what a connection does after a request.
type action uint8

const (
	keepOpen action = iota
	closeConn
	handOff
)

func (fs *fastServer) serve(c net.Conn) {
	defer fs.wg.Done()
	br := clientReaders.Get().(*bufio.Reader)
	br.Reset(c)
	fc := &fastConn{fs: fs, c: c, br: br, out: make([]byte, 0, relayBufSize)}
	if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		fc.remoteIP = host
	}
	fs.mu.Lock()
	fs.conns[fc] = struct{}{}
	fs.mu.Unlock()
	next := fc.loop()
	fs.mu.Lock()
	delete(fs.conns, fc)
	fs.mu.Unlock()
	if next == handOff {
		fs.s.handoffs.Add(1)
		_ = c.SetDeadline(time.Time{})
		select {
		case fs.handoffs <- &handedConn{Conn: c, br: br}:
			return // net/http owns c and br now
		case <-fs.done:
		}
	}
	_ = c.Close()
	br.Reset(nil)
	clientReaders.Put(br)
}

// handedConn is a connection handed to net/http: reads drain the buffer
// that holds the start of the next request, then go to the connection
// itself and the buffer is recycled. (net/http never reads a connection
// from two goroutines at once.)
type handedConn struct {
	net.Conn
	br *bufio.Reader
}

func (h *handedConn) Read(p []byte) (int, error) {
	if h.br != nil {
		if h.br.Buffered() > 0 {
			return h.br.Read(p)
		}
		h.br.Reset(nil)
		clientReaders.Put(h.br)
		h.br = nil
	}
	return h.Conn.Read(p)
}

// CloseWrite half-closes the connection, which net/http does before it
// closes a connection with unread input (so the answer is not lost to a
// reset).
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (fc *fastConn) loop() action {
	for {
		fc.idle.Store(true)
		if fc.fs.closing.Load() {
			return closeConn
		}
		_ = fc.c.SetReadDeadline(time.Now().Add(idleTimeout))
		if _, err := fc.br.Peek(1); err != nil {
			return closeConn
		}
		fc.idle.Store(false)
		_ = fc.c.SetReadDeadline(time.Now().Add(readHeaderTimeout))
		raw, err := peekHead(fc.br)
		if err != nil {
			if errors.Is(err, errHeadTooLarge) {
				return handOff
			}
			return closeConn
		}
		if bytes.HasPrefix(raw, []byte("PRI * HTTP/2.0\r\n")) {
			return handOff // HTTP/2 without TLS (gRPC): net/http
		}
		fc.hbuf = append(fc.hbuf[:0], raw...)
		fc.req.reset()
		rest, herr := parseRequestLine(fc.hbuf, &fc.req)
		if herr == nil && fc.req.minor == 1 && bindingGetName(fc.req.method, fc.req.target) != nil {
			// GET /v1/bindings/{name}: answered here when the cache holds
			// the binding and nothing about the request needs net/http.
			if parseFields(rest, &fc.req) != nil || !fc.getBinding(len(raw)) {
				return handOff
			}
			if fc.req.close {
				return closeConn
			}
			continue
		}
		if herr == nil && (fc.req.minor != 1 || !bytes.HasPrefix(fc.req.target, []byte(invokePrefix))) {
			return handOff // the API, HTTP/1.0: net/http
		}
		if herr == nil {
			herr = parseFields(rest, &fc.req)
		}
		if herr != nil {
			_, _ = fc.br.Discard(len(raw))
			prob := httpapi.NewProblem(herr.status, "bad-request", "malformed HTTP/1.1 request: "+herr.detail)
			if herr.status == http.StatusNotImplemented {
				prob.Type = httpapi.ProblemBase + "not-implemented"
			}
			fc.refuse(prob, false)
			return closeConn
		}
		if fc.req.upgrade {
			return handOff // WebSocket and other upgrades: ReverseProxy relays them
		}
		if next := fc.invoke(len(raw)); next != keepOpen {
			return next
		}
		if fc.req.close {
			return closeConn
		}
	}
}

// refuse answers a problem of our own and leaves the connection to be
// closed unless keep is true.
func (fc *fastConn) refuse(p *httpapi.Problem, keep bool) {
	_ = fc.c.SetWriteDeadline(time.Now().Add(refuseTimeout))
	var w problemWriter
	httpapi.WriteProblem(&w, p)
	fc.out = fmt.Appendf(fc.out[:0], "HTTP/1.1 %d %s\r\n", w.status, http.StatusText(w.status))
	for k, vs := range w.h {
		for _, v := range vs {
			fc.out = append(append(append(append(fc.out, k...), ": "...), v...), "\r\n"...)
		}
	}
	fc.out = strconv.AppendInt(append(fc.out, "Content-Length: "...), int64(w.body.Len()), 10)
	if !keep {
		fc.out = append(fc.out, "\r\nConnection: close"...)
	}
	fc.out = append(fc.out, "\r\n\r\n"...)
	if !equalFold(fc.req.method, "HEAD") {
		fc.out = append(fc.out, w.body.Bytes()...)
	}
	_, _ = fc.c.Write(fc.out)
}

// problemWriter captures what httpapi.WriteProblem writes.
type problemWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *problemWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *problemWriter) WriteHeader(code int)        { w.status = code }
func (w *problemWriter) Write(b []byte) (int, error) { return w.body.Write(b) }

// exchange is the state of one invocation on the fast path.
type exchange struct {
	dependency string
	pool       *pool
	tail       string // the target after /v1/invoke/{name}, as sent: "/...", "/?q" or "/"
	deadline   time.Time
	policy     retry

	bodyLen      int  // bytes of a body already in the client buffer, forwarded from there
	streamed     bool // the body is read from the client while it is forwarded
	bodyStarted  bool // some of the body left the client buffer: no replay
	status       int
	result       string
	endpoint     *endpoint // of the last attempt
	closeClient  bool
	bodyFinished chan error // the streaming body copier's result
}

// invoke serves one invocation whose head (headLen bytes, still in the
// buffer) is parsed in fc.req.
func (fc *fastConn) invoke(headLen int) action {
	start := time.Now()
	s, h := fc.fs.s, &fc.req
	if s.cfg.OutliveApp {
		s.activity.begin()
		defer s.activity.end()
	}
	if h.hosts != 1 {
		_, _ = fc.br.Discard(headLen)
		fc.refuse(httpapi.FieldProblem("Host", "an HTTP/1.1 request needs exactly one Host header"), false)
		return closeConn
	}
	if p := fc.fs.guard.Check(string(h.host), h.origin); p != nil {
		_, _ = fc.br.Discard(headLen)
		fc.refuse(p, false)
		return closeConn
	}
	if rawNameHasSlash(h.target) {
		return handOff // a name with an escaped "/": net/http splits it as it always did
	}
	name, path, err := invokeTarget(h.target)
	if err != nil {
		_, _ = fc.br.Discard(headLen)
		fc.refuse(httpapi.FieldProblem("path", fmt.Sprintf("request target %q is not a valid path: %v", h.target, err)), false)
		return closeConn
	}
	pl, timeout, prob := s.prepareInvoke(name, path, string(h.timeout))
	if prob == nil && !pl.plain {
		return handOff // https endpoints: http.Transport speaks TLS
	}
	_, _ = fc.br.Discard(headLen)
	if prob != nil {
		fc.fs.route.observe(prob.Status, start)
		keep := !h.chunked && h.contentLength <= 0
		fc.refuse(prob, keep)
		if !keep {
			return closeConn
		}
		return keepOpen
	}
	pl = pl.target()
	x := &exchange{dependency: name, pool: pl, tail: invokeTail(h.target), deadline: start.Add(timeout), policy: retryOf(string(h.method))}
	_ = fc.c.SetDeadline(x.deadline)
	fc.traced = false
	if tr := s.proxy.tracer; tr != nil {
		fc.trace = traceFields{in: h}
		ctx, span := tr.start(context.Background(), &fc.trace, name, string(h.method))
		tr.prop.Inject(ctx, &fc.trace)
		fc.traced = true
		defer func() { tr.end(span, x.status, x.result, x.endpoint) }()
	}
	defer func() {
		pl.counters[resultIndex(x.result)].Inc()
		fc.fs.route.observe(x.status, start)
	}()

	switch {
	case h.chunked:
		buffered, _ := fc.br.Peek(fc.br.Buffered())
		n, err := scanChunked(buffered)
		if err != nil {
			x.status, x.result = http.StatusBadRequest, resultOK
			fc.refuse(httpapi.NewProblem(http.StatusBadRequest, "bad-request", "malformed HTTP/1.1 request: invalid chunked body (nothing was forwarded)"), false)
			return closeConn
		}
		x.bodyLen, x.streamed = n, n == 0
	case h.contentLength > 0:
		if int64(fc.br.Buffered()) >= h.contentLength {
			x.bodyLen = int(h.contentLength)
		} else {
			x.streamed = true
		}
	}
	fc.exchange(x)
	if x.closeClient {
		return closeConn
	}
	return keepOpen // the next request sets its own deadlines
}

// invokeTarget returns the dependency name and the decoded path after it
// of an invoke request target. A target without escapes is split in
// place; one with escapes is decoded by net/url, as net/http would.
func invokeTarget(target []byte) (name, path string, err error) {
	if bytes.IndexByte(target, '%') >= 0 {
		u, err := url.ParseRequestURI(string(target))
		if err != nil {
			return "", "", err
		}
		name, path, _ = splitInvokePath(u)
		return name, path, nil
	}
	p := target[len(invokePrefix):]
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		return string(p[:i]), string(p[i:]), nil
	}
	return string(p), "", nil
}

// rawNameHasSlash reports whether the name segment of an invoke target
// holds an escaped "/" (%2F), which decodes into a path separator.
func rawNameHasSlash(target []byte) bool {
	rest := target[len(invokePrefix):]
	if i := bytes.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	for i := bytes.IndexByte(rest, '%'); i >= 0 && i+2 < len(rest); i = bytes.IndexByte(rest, '%') {
		if rest[i+1] == '2' && (rest[i+2] == 'F' || rest[i+2] == 'f') {
			return true
		}
		rest = rest[i+1:]
	}
	return false
}

// invokeTail returns the part of an invoke target after the dependency
// name, as sent, with a leading "/" when it has none.
func invokeTail(target []byte) string {
	rest := target[len(invokePrefix):]
	i := bytes.IndexAny(rest, "/?")
	switch {
	case i < 0:
		return "/"
	case rest[i] == '?':
		return "/" + string(rest[i:])
	}
	return string(rest[i:])
}

// errRetryStale: a reused connection failed before the provider answered;
// the request goes again on a new connection to the same endpoint.
var errRetryStale = errors.New("kept-alive connection closed by the provider")

// exchange forwards the request to the pool's endpoints, with the retries
// retryOf allows, and relays the answer.
func (fc *fastConn) exchange(x *exchange) {
	attempts := 1
	if x.policy != retryNever && len(x.pool.endpoints) > 1 {
		attempts = maxAttempts
	}
	var (
		tried   [maxAttempts]*endpoint
		lastErr error
	)
	for i := range attempts {
		now := time.Now()
		ep := x.pool.pick(now.UnixNano(), tried[:i])
		if ep == nil {
			break
		}
		tried[i] = ep
		sent, answered, err := fc.attempt(x, ep, now, false)
		if errors.Is(err, errRetryStale) {
			// The other idle connections are likely as dead (a restarted
			// provider): the request goes on a new one.
			sent, answered, err = fc.attempt(x, ep, time.Now(), true)
		}
		if err == nil {
			return
		}
		if errors.Is(err, errClientBody) {
			return // answered by attempt
		}
		fc.fs.s.proxy.fail(ep, now)
		lastErr = fmt.Errorf("%s: %w", ep.host, err)
		if isTimeout(err) || time.Now().After(x.deadline) {
			x.status, x.result = http.StatusGatewayTimeout, resultTimeout
			prob := httpapi.NewProblem(http.StatusGatewayTimeout, "invoke-timeout",
				fmt.Sprintf("dependency %q did not answer in time (set the Ddi-Timeout header to wait longer)", x.dependency))
			prob.Dependency = x.dependency
			fc.refuse(prob, !x.closeClient)
			return
		}
		replayable := !x.bodyStarted
		switch {
		case !replayable:
		case x.policy == retryUnsent && !sent, x.policy == retryUnanswered && !answered:
			continue
		}
		break
	}
	if lastErr == nil {
		x.status, x.result = http.StatusServiceUnavailable, resultUnavailable
		prob := httpapi.NewProblem(http.StatusServiceUnavailable, "no-endpoint",
			fmt.Sprintf("dependency %q has no available endpoint: every endpoint is ejected after repeated failures", x.dependency))
		prob.Dependency = x.dependency
		fc.refuse(prob, !x.closeClient && !x.streamed)
		return
	}
	x.status, x.result = http.StatusBadGateway, resultError
	prob := httpapi.NewProblem(http.StatusBadGateway, "bad-gateway",
		fmt.Sprintf("dependency %q could not be reached: %v", x.dependency, lastErr))
	prob.Dependency = x.dependency
	fc.refuse(prob, !x.closeClient && !x.streamed && !x.bodyStarted)
	if x.streamed || x.bodyStarted {
		x.closeClient = true
	}
}

// errClientBody: the caller's body failed (an invalid chunk, a timeout,
// a disconnect) while it was forwarded; the caller got its answer.
var errClientBody = errors.New("request body failed")

// clientBodyError is a failure to read the caller's body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// attempt sends the request to ep and, once the provider's final head
// arrived, relays the response; from then on it returns nil, since the
// caller has its answer (or its connection is closed). Before that it
// reports whether a connection was obtained (sent) and whether any
// response byte arrived (answered), with the error.
func (fc *fastConn) attempt(x *exchange, ep *endpoint, now time.Time, fresh bool) (sent, answered bool, err error) {
	// A request that may not be sent twice is sent on a connection the
	// provider has not closed meanwhile (safe methods are sent again on a
	// new connection instead, see errRetryStale).
	x.endpoint = ep
	var up *upConn
	if !fresh {
		up = ep.conns.get(now, x.policy != retryUnanswered || x.streamed)
	}
	if up == nil {
		if up, err = dialUpstream(ep, x.deadline); err != nil {
			return false, false, err
		}
	}
	sent = true
	_ = up.SetDeadline(x.deadline)
	reused := up.reused
	fc.out = fc.appendRequestHead(fc.out[:0], x, ep)
	if x.bodyLen > 0 {
		b, _ := fc.br.Peek(x.bodyLen)
		fc.out = append(fc.out, b...)
	}
	if _, werr := up.Write(fc.out); werr != nil {
		up.discard()
		if reused && !x.streamed && !isTimeout(werr) {
			return sent, false, errRetryStale
		}
		return sent, false, werr
	}
	if x.streamed {
		x.bodyStarted = true
		x.bodyFinished = make(chan error, 1)
		go func() {
			err := fc.sendBody(up)
			var cbe *clientBodyError
			if errors.As(err, &cbe) {
				_ = up.Close() // the provider waits for a body that will not come
			}
			x.bodyFinished <- err
		}()
	}
	bodyDone := func() error { // waits for the body copier; nil when there is none
		if x.bodyFinished == nil {
			return nil
		}
		err := <-x.bodyFinished
		x.bodyFinished = nil
		return err
	}

	// The response head, after any 1xx.
	r := &fc.resp
	for {
		raw, herr := peekHead(up.br)
		if herr != nil {
			answered = up.br.Buffered() > 0
			if x.streamed {
				_ = up.Close()
				if berr := bodyDone(); berr != nil {
					var cbe *clientBodyError
					if errors.As(berr, &cbe) {
						fc.clientBodyFailed(x, cbe)
						up.discard()
						return sent, answered, errClientBody
					}
				}
			}
			up.discard()
			switch {
			case errors.Is(herr, errHeadTooLarge):
				return sent, true, fmt.Errorf("response head larger than %d bytes", upstreamHeadBytes)
			case reused && !answered && !x.streamed && !isTimeout(herr) && x.policy == retryUnanswered:
				return sent, false, errRetryStale
			}
			return sent, answered, herr
		}
		r.reset()
		rest, perr := parseStatusLine(raw, r)
		if perr == nil {
			perr = parseFields(rest, r)
		}
		if perr == nil && r.status == http.StatusSwitchingProtocols {
			perr = badHead("101 Switching Protocols to a request that asked for no upgrade")
		}
		if perr != nil {
			if x.streamed {
				_ = up.Close()
				_ = bodyDone()
			}
			up.discard()
			return sent, true, fmt.Errorf("malformed response: %s", perr.detail)
		}
		if r.status >= 200 {
			break
		}
		// 1xx (100 Continue, 103 Early Hints): relay it, then the next.
		fc.out = fc.appendResponseHead(fc.out[:0], r, false, false)
		_, _ = up.br.Discard(len(raw))
		if _, werr := fc.c.Write(fc.out); werr != nil {
			if x.streamed {
				_ = up.Close()
				_ = bodyDone()
			}
			up.discard()
			x.status, x.result, x.closeClient = r.status, resultCanceled, true
			return sent, true, nil
		}
	}

	// Committed: the caller gets this response.
	raw, _ := peekHead(up.br)
	_, _ = up.br.Discard(len(raw))
	x.status = r.status
	if r.status >= 500 {
		fc.fs.s.proxy.fail(ep, now)
		x.result = resultServerError
	} else {
		ep.succeeded()
		x.result = resultOK
	}
	noBody := equalFold(fc.req.method, "HEAD") || r.status == http.StatusNoContent || r.status == http.StatusNotModified
	untilClose := !noBody && !r.chunked && r.contentLength < 0
	if x.streamed {
		// Keep the connection only if the whole request body went up.
		select {
		case err := <-x.bodyFinished:
			x.bodyFinished = nil
			if err != nil {
				x.closeClient = true
			}
		default:
			x.closeClient = true
		}
	}
	if fc.req.close {
		x.closeClient = true
	}
	fc.out = fc.appendResponseHead(fc.out[:0], r, !noBody && (r.chunked || untilClose), x.closeClient)
	var rerr, werr error
	switch {
	case noBody:
		_, werr = fc.c.Write(fc.out)
	case r.chunked || untilClose:
		rerr, werr = fc.relayChunked(up.br, untilClose)
	default:
		rerr, werr = fc.relayLength(up.br, r.contentLength)
	}
	reusable := rerr == nil && werr == nil && !untilClose && !r.close && r.minor == 1
	if x.bodyFinished != nil {
		// The provider answered before it read the whole body: stop
		// sending it; the caller's connection closes (its body is unread).
		_ = up.Close()
		_ = bodyDone()
		reusable, x.closeClient = false, true
	}
	switch {
	case werr != nil:
		x.result, x.closeClient = resultCanceled, true
	case rerr != nil:
		if isTimeout(rerr) {
			x.result = resultTimeout
		} else {
			x.result = resultError
		}
		x.closeClient = true
		fc.fs.s.proxy.fail(ep, now)
	}
	if x.bodyLen > 0 && !x.closeClient {
		_, _ = fc.br.Discard(x.bodyLen)
	} else if x.bodyLen > 0 {
		x.closeClient = true
	}
	if reusable {
		_ = up.SetDeadline(time.Time{})
		ep.conns.put(up, time.Now())
	} else {
		up.discard()
	}
	return sent, true, nil
}

// clientBodyFailed answers the caller whose body could not be read.
func (fc *fastConn) clientBodyFailed(x *exchange, e *clientBodyError) {
	x.closeClient = true
	switch {
	case errors.Is(e.err, errBadChunk):
		x.status, x.result = http.StatusBadRequest, resultOK
		fc.refuse(httpapi.NewProblem(http.StatusBadRequest, "bad-request", "malformed HTTP/1.1 request: invalid chunked body (the provider's connection was closed before the invalid chunk)"), false)
	case isTimeout(e.err):
		x.status, x.result = http.StatusRequestTimeout, resultTimeout
		fc.refuse(httpapi.NewProblem(http.StatusRequestTimeout, "body-too-slow", "request body not received within the invoke timeout (set the Ddi-Timeout header to wait longer)"), false)
	default:
		x.status, x.result = 499, resultCanceled
	}
}

// sendBody copies the caller's body to the provider as it arrives.
func (fc *fastConn) sendBody(up *upConn) error {
	if fc.body == nil {
		fc.body = make([]byte, relayBufSize)
	}
	buf := fc.body
	if !fc.req.chunked {
		left := fc.req.contentLength
		for left > 0 {
			n, err := fc.br.Read(buf[:min(int64(len(buf)), left)])
			left -= int64(n)
			if n > 0 {
				if _, werr := up.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if err != nil && left > 0 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return &clientBodyError{err}
			}
		}
		return nil
	}
	cr := &chunkedReader{r: fc.br}
	const pre = 18 // room for a chunk-size line
	for {
		n, err := cr.Read(buf[pre : len(buf)-2])
		if n > 0 {
			size := strconv.AppendInt(buf[:0:pre], int64(n), 16)
			start := pre - len(size) - 2
			copy(buf[start:], size)
			buf[pre-2], buf[pre-1] = '\r', '\n'
			buf[pre+n], buf[pre+n+1] = '\r', '\n'
			if _, werr := up.Write(buf[start : pre+n+2]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			end := forwardTrailer(append(buf[:0:pre], "0\r\n"...), cr.trailer)
			_, werr := up.Write(append(end, "\r\n"...))
			return werr
		}
		if err != nil {
			return &clientBodyError{err}
		}
	}
}

// appendRequestHead appends the head of the request to ep: the caller's
// fields without the hop-by-hop ones, Ddi-Timeout and any X-Forwarded-*
// or Forwarded field (the sidecar sets X-Forwarded-For and -Proto afresh,
// as httputil.ProxyRequest.SetXForwarded does).
func (fc *fastConn) appendRequestHead(b []byte, x *exchange, ep *endpoint) []byte {
	h := &fc.req
	b = append(append(b, h.method...), ' ')
	b = append(append(b, ep.escBase...), x.tail...)
	b = append(append(append(b, " HTTP/1.1\r\nHost: "...), ep.host...), "\r\n"...)
	hasAuth := false
	for _, f := range h.fields {
		switch {
		case h.hopByHop(f.name), equalFold(f.name, "Host"), equalFold(f.name, "Content-Length"),
			equalFold(f.name, "Ddi-Timeout"), equalFold(f.name, "X-Forwarded-For"),
			equalFold(f.name, "X-Forwarded-Proto"), equalFold(f.name, "X-Forwarded-Host"), equalFold(f.name, "Forwarded"):
			continue
		case fc.traced && (equalFold(f.name, "traceparent") || equalFold(f.name, "tracestate")):
			continue // replaced by the sidecar's span
		case equalFold(f.name, "Authorization"):
			hasAuth = true
		}
		b = append(append(append(append(b, f.name...), ": "...), f.value...), "\r\n"...)
	}
	if ep.auth != "" && !hasAuth {
		b = append(append(append(b, "Authorization: "...), ep.auth...), "\r\n"...)
	}
	if fc.traced {
		if fc.trace.traceparent != "" {
			b = append(append(append(b, "traceparent: "...), fc.trace.traceparent...), "\r\n"...)
		}
		if fc.trace.tracestate != "" {
			b = append(append(append(b, "tracestate: "...), fc.trace.tracestate...), "\r\n"...)
		}
	}
	if fc.remoteIP != "" {
		b = append(append(append(b, "X-Forwarded-For: "...), fc.remoteIP...), "\r\n"...)
	}
	b = append(b, "X-Forwarded-Host: "...)
	b = append(append(b, h.host...), "\r\nX-Forwarded-Proto: http\r\n"...)
	switch {
	case h.chunked && x.streamed:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case h.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case h.contentLength >= 0:
		b = strconv.AppendInt(append(b, "Content-Length: "...), h.contentLength, 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// appendResponseHead appends the head relayed to the caller: the
// provider's fields without the hop-by-hop ones and without framing,
// which the relay sets itself.
func (fc *fastConn) appendResponseHead(b []byte, r *head, chunked, close bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(append(append(b, ' '), r.reason...), "\r\n"...)
	for _, f := range r.fields {
		if r.hopByHop(f.name) || (chunked && equalFold(f.name, "Content-Length")) {
			continue
		}
		b = append(append(append(append(b, f.name...), ": "...), f.value...), "\r\n"...)
	}
	if chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if close {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

// relayLength relays a body of n bytes after the head in fc.out, in as
// few writes as the provider's pace allows: bytes that have arrived are
// written as soon as no more are waiting.
func (fc *fastConn) relayLength(src *bufio.Reader, n int64) (rerr, werr error) {
	out := fc.out
	for n > 0 {
		if len(out) == cap(out) || (len(out) > 0 && src.Buffered() == 0) {
			if _, werr = fc.c.Write(out); werr != nil {
				return nil, werr
			}
			out = out[:0]
		}
		m, err := src.Read(out[len(out):min(cap(out), len(out)+int(min(n, int64(cap(out)))))])
		out = out[:len(out)+m]
		n -= int64(m)
		if err != nil && n > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if len(out) > 0 {
				_, _ = fc.c.Write(out)
			}
			return err, nil
		}
	}
	if len(out) > 0 {
		_, werr = fc.c.Write(out)
	}
	fc.out = out[:0]
	return nil, werr
}

// relayChunked relays a chunked body (or, with untilClose, a body that
// ends when the provider closes) to the caller as chunks, each written
// as soon as nothing more is waiting: server-sent events and other
// streams reach the caller as the provider writes them.
func (fc *fastConn) relayChunked(src *bufio.Reader, untilClose bool) (rerr, werr error) {
	var rd io.Reader = src
	if !untilClose {
		fc.cr.reset(src)
		rd = &fc.cr
	}
	if fc.rbuf == nil {
		fc.rbuf = make([]byte, relayBufSize)
	}
	out := fc.out
	for {
		// Write what is assembled before a read that would wait.
		if len(out) > 0 && (cap(out)-len(out) < 1024 || !untilClose && !fc.cr.ready() || untilClose && src.Buffered() == 0) {
			if _, werr = fc.c.Write(out); werr != nil {
				fc.out = out[:0]
				return nil, werr
			}
			out = out[:0]
		}
		n, err := rd.Read(fc.rbuf[:min(len(fc.rbuf), cap(out)-len(out)-32)])
		if n > 0 {
			out = strconv.AppendInt(out, int64(n), 16)
			out = append(append(append(out, "\r\n"...), fc.rbuf[:n]...), "\r\n"...)
		}
		if err == io.EOF {
			out = append(out, "0\r\n"...)
			if !untilClose {
				out = forwardTrailer(out, fc.cr.trailer)
			}
			out = append(out, "\r\n"...)
			_, werr = fc.c.Write(out)
			fc.out = out[:0]
			return nil, werr
		}
		if err != nil {
			if len(out) > 0 {
				_, _ = fc.c.Write(out)
			}
			fc.out = out[:0]
			return err, nil
		}
	}
}

// bindingsPrefix starts the target of GET /v1/bindings/{name}.
const bindingsPrefix = "/v1/bindings/"

// bindingGetName returns the binding a request line asks for when it is
// a plain GET /v1/bindings/{name}: no query, and a name of the characters
// a valid name has (anything else, escapes included, goes to net/http);
// nil otherwise. It returns a slice of target: no allocation.
func bindingGetName(method, target []byte) []byte {
	if string(method) != http.MethodGet || !bytes.HasPrefix(target, []byte(bindingsPrefix)) {
		return nil
	}
	name := target[len(bindingsPrefix):]
	if len(name) == 0 {
		return nil
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return nil
		}
	}
	return name
}

// getBinding answers GET /v1/bindings/{name} (head of headLen bytes, still
// in the buffer, parsed in fc.req) from the binding cache with exactly what
// the API's handler writes (writeEntry), and reports whether it did. It
// leaves to net/http every request whose answer is not a cached binding
// (a name the snapshot lacks, a refusal by the local guard) or that
// carries what the API's checks look at (a body, a Content-Type), so that
// those are answered by the API's own code.
func (fc *fastConn) getBinding(headLen int) bool {
	start := time.Now()
	s, h := fc.fs.s, &fc.req
	if h.hosts != 1 || h.contentLength > 0 || h.chunked || h.upgrade || h.hasField("Content-Type") ||
		fc.fs.guard.Check(string(h.host), h.origin) != nil {
		return false
	}
	e := s.cache.load().bindings[string(bindingGetName(h.method, h.target))] // no copy: a map index
	if e == nil {
		return false
	}
	if s.cfg.OutliveApp {
		s.activity.begin()
		defer s.activity.end()
	}
	_, _ = fc.br.Discard(headLen)
	fc.out = append(fc.out[:0], "HTTP/1.1 200 OK\r\nCache-Control: "...)
	fc.out = append(fc.out, noStore[0]...)
	fc.out = append(fc.out, "\r\nContent-Length: "...)
	fc.out = append(fc.out, e.length[0]...)
	fc.out = append(fc.out, "\r\nContent-Type: "...)
	fc.out = append(fc.out, jsonContentType[0]...)
	fc.out = append(fc.out, "\r\nDate: "...)
	fc.out = time.Now().UTC().AppendFormat(fc.out, http.TimeFormat)
	if h.close {
		fc.out = append(fc.out, "\r\nConnection: close"...)
	}
	fc.out = append(append(fc.out, "\r\n\r\n"...), e.body...)
	_ = fc.c.SetWriteDeadline(time.Now().Add(refuseTimeout))
	_, err := fc.c.Write(fc.out)
	_ = fc.c.SetWriteDeadline(time.Time{})
	fc.fs.s.getRoute.observe(http.StatusOK, start)
	if err != nil {
		h.close = true
	}
	return true
}
