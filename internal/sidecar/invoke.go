package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/registry"
)

// invokePrefix is the path prefix of the invoke route.
const invokePrefix = "/v1/invoke/"

// maxAttempts is one try plus two retries, for the methods retryOf allows.
const maxAttempts = 3

var errNoEndpoint = errors.New("no endpoint available")

// proxy is the invoke proxy: one ReverseProxy over a shared, tuned
// Transport. The Rewrite function only sets the path; the proxy's own
// RoundTrip picks the endpoint, retries what retryOf allows and feeds
// outlier ejection.
type proxy struct {
	rp        *httputil.ReverseProxy
	transport *http.Transport
	endpoints endpoints
	timeout   time.Duration
	metrics   *metrics
	log       *slog.Logger
	tracer    *invokeTracer // nil unless OTEL_* asks for traces (trace.go)
}

func newProxy(timeout time.Duration, m *metrics, log *slog.Logger) *proxy {
	p := &proxy{
		transport: &http.Transport{
			// Providers are reached directly, never through an environment
			// proxy.
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			// The caller's Accept-Encoding passes through untouched.
			DisableCompression: true,
		},
		endpoints: endpoints{byURL: map[string]*endpoint{}, metrics: m},
		timeout:   timeout,
		metrics:   m,
		log:       log,
		tracer:    newInvokeTracer(log),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    p,
		BufferPool:   newBufferPool(64, 32<<10),
		ErrorHandler: p.errorHandler,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

func (p *proxy) close() { p.transport.CloseIdleConnections() }

// invocation is the per-request state, carried in the request's context
// from the handler to RoundTrip and the error handler. It is the context
// itself, so carrying it costs no extra allocation.
type invocation struct {
	context.Context
	dependency string
	pool       *pool
	path       string // path after /v1/invoke/{name}: "" or "/..."
	rawPath    string // its escaped form when it differs, else ""
	status     int    // status of the relayed response
	result     string
	spanned    bool // the context carries the invocation's client span

	// Set by the client trace of an attempt that may be retried.
	sent     atomic.Bool // a connection was obtained: the request may have reached the provider
	answered atomic.Bool // a response byte arrived
}

type invocationKey struct{}

func (inv *invocation) Value(key any) any {
	if key == (invocationKey{}) {
		return inv
	}
	return inv.Context.Value(key)
}

func (s *Sidecar) handleInvoke(w http.ResponseWriter, r *http.Request) {
	name, path, rawPath := splitInvokePath(r.URL)
	pl, timeout, prob := s.prepareInvoke(name, path, r.Header.Get("Ddi-Timeout"))
	if prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	pl = pl.target()
	if r.Header.Get("Ddi-Timeout") == "" && isUpgrade(r.Header) {
		timeout = 0 // a WebSocket lives as long as its peers want
	}
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	inv := &invocation{Context: ctx, dependency: name, pool: pl, path: path, rawPath: rawPath}
	var span trace.Span
	if tr := s.proxy.tracer; tr != nil {
		inv.Context, span = tr.start(ctx, propagation.HeaderCarrier(r.Header), name, r.Method)
		inv.spanned = true
	}
	defer func() {
		cancel()
		if inv.result == "" {
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				inv.result = resultTimeout
			case r.Context().Err() != nil:
				inv.result = resultCanceled
			case inv.status >= 500:
				inv.result = resultServerError
			default:
				inv.result = resultOK
			}
		}
		pl.counters[resultIndex(inv.result)].Inc()
		if span != nil {
			s.proxy.tracer.end(span, inv.status, inv.result, nil)
		}
	}()
	s.proxy.rp.ServeHTTP(w, r.WithContext(inv))
}

// prepareInvoke finds the endpoint pool of dependency name (for a split,
// the pool of every target: the caller takes pool.target once it knows
// which path serves the invocation) and the
// invocation's timeout (the Ddi-Timeout header's value, if any, else the
// default), or the problem that refuses the invocation. Both invoke paths
// (the fast relay and the net/http one) use it.
func (s *Sidecar) prepareInvoke(name, path, timeoutHeader string) (*pool, time.Duration, *httpapi.Problem) {
	snap := s.cache.load()
	e := snap.bindings[name]
	if e == nil {
		if err := registry.ValidateName("name", name); err != nil {
			return nil, 0, httpapi.ValidationProblem(err)
		}
		return nil, 0, s.missingProblem(snap, name)
	}
	if hasDotSegment(path) {
		prob := httpapi.FieldProblem("path", fmt.Sprintf("path %q after /v1/invoke/%s has a \".\" or \"..\" segment (perhaps escaped as %%2e), which could leave the endpoint's base path: send the path the provider should see, without dot segments", path, name))
		prob.Dependency = name
		return nil, 0, prob
	}
	pl := s.proxy.endpoints.poolFor(e)
	if pl.empty() {
		prob := httpapi.NewProblem(http.StatusBadRequest, "not-invokable",
			fmt.Sprintf("dependency %q is bound to provider %s of type %s, which has no http(s) endpoint: connect to it directly (GET /v1/bindings/%s)", name, e.binding.Provider, e.binding.Type, name))
		prob.Dependency, prob.Selector = name, e.binding.Selector
		return nil, 0, prob
	}
	timeout := s.proxy.timeout
	if v := timeoutHeader; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxInvokeTimeout {
			return nil, 0, httpapi.FieldProblem("Ddi-Timeout",
				fmt.Sprintf("header Ddi-Timeout %q must be a duration above 0 and at most %s, such as 2s", v, MaxInvokeTimeout))
		}
		timeout = d
	}
	return pl, timeout, nil
}

// splitInvokePath splits /v1/invoke/{name}/{path...} into the name and the
// rest, decoded and (when the request had a distinct escaped form)
// escaped, without allocating: all are substrings of the request's paths.
func splitInvokePath(u *url.URL) (name, path, raw string) {
	rest := strings.TrimPrefix(u.Path, invokePrefix)
	name, path = rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		name, path = rest[:i], rest[i:]
	}
	if u.RawPath != "" {
		if r, ok := strings.CutPrefix(u.RawPath, invokePrefix+name); ok && (r == "" || r[0] == '/') {
			raw = r
		}
	}
	return name, path, raw
}

// hasDotSegment reports whether a decoded path has a "." or ".." segment
// (a backslash counts as a separator too, as some servers treat it). The
// path is decoded, so %2e%2e and %2F..%2F are caught as well. Appended to an
// endpoint's base path, such a segment could reach a path outside it once
// the provider cleans the path.
func hasDotSegment(path string) bool {
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' && path[i] != '\\' {
			continue
		}
		if seg := path[start:i]; seg == "." || seg == ".." {
			return true
		}
		start = i + 1
	}
	return false
}

// invocationOf returns the invocation a request's context carries.
func invocationOf(r *http.Request) *invocation {
	return r.Context().Value(invocationKey{}).(*invocation)
}

// rewrite sets the outbound path; RoundTrip sets scheme and host per
// attempt. Rewrite (unlike Director) already drops hop-by-hop and
// X-Forwarded-* headers; X-Forwarded-For, -Host and -Proto are set afresh,
// as the fast path does; traceparent and tracestate pass through.
func rewrite(pr *httputil.ProxyRequest) {
	inv := invocationOf(pr.In)
	out := pr.Out.URL
	out.Path, out.RawPath = inv.path, inv.rawPath
	if out.Path == "" {
		out.Path = "/"
	}
	pr.Out.Host = ""
	pr.Out.Header.Del("Ddi-Timeout")
	pr.SetXForwarded()
	if inv.spanned {
		// The provider's parent is the sidecar's client span.
		propagation.TraceContext{}.Inject(inv.Context, propagation.HeaderCarrier(pr.Out.Header))
	}
}

// isUpgrade reports whether h asks for a protocol upgrade (WebSocket).
func isUpgrade(h http.Header) bool {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// retry is when a failed attempt of an invocation may be repeated on
// another endpoint.
type retry uint8

const (
	// retryNever: POST, PATCH and other methods are sent at most once.
	retryNever retry = iota
	// retryUnsent: PUT and DELETE are idempotent but change state, and a
	// request without a body (or a provider that read none of it) may
	// still have been processed; they are repeated only when no connection
	// was obtained (a refused or failed dial), so nothing was sent.
	retryUnsent
	// retryUnanswered: the safe methods (GET, HEAD, OPTIONS, TRACE) are
	// also repeated after they were sent, as long as no byte of a response
	// arrived.
	retryUnanswered
)

func retryOf(method string) retry {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return retryUnanswered
	case http.MethodPut, http.MethodDelete:
		return retryUnsent
	}
	return retryNever
}

// traced makes the transport record on inv whether an attempt was sent
// and answered.
func (inv *invocation) traced(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:              func(httptrace.GotConnInfo) { inv.sent.Store(true) },
		GotFirstResponseByte: func() { inv.answered.Store(true) },
	})
}

// mayRetry reports whether the attempt that just failed may be repeated.
func (inv *invocation) mayRetry(policy retry, body *replayableBody) bool {
	switch {
	case body != nil && body.read:
		return false // part of the body is gone
	case policy == retryUnsent:
		return !inv.sent.Load()
	case policy == retryUnanswered:
		return !inv.answered.Load()
	}
	return false
}

// RoundTrip sends req to the binding's next available endpoint. A failed
// attempt is repeated on another endpoint, at most twice, only when that
// cannot make the provider act twice (retryOf): PUT and DELETE only when
// the request was never sent, safe methods only before any response byte,
// and never once the transport read any of the request body. Every
// connection failure and 5xx answer counts towards the endpoint's
// ejection.
func (p *proxy) RoundTrip(req *http.Request) (*http.Response, error) {
	inv := invocationOf(req)
	policy := retryOf(req.Method)
	attempts := 1
	var body *replayableBody
	if policy != retryNever && len(inv.pool.endpoints) > 1 {
		attempts = maxAttempts
		if req.Body != nil && req.Body != http.NoBody {
			body = &replayableBody{rc: req.Body}
			req.Body = body
			defer body.rc.Close()
		}
		req = req.WithContext(inv.traced(req.Context()))
	}
	var (
		tried   [maxAttempts]*endpoint
		lastErr error
	)
	out := req
	for i := range attempts {
		now := time.Now()
		ep := inv.pool.pick(now.UnixNano(), tried[:i])
		if ep == nil {
			if lastErr == nil {
				lastErr = errNoEndpoint
			}
			break
		}
		tried[i] = ep
		if i > 0 {
			out = req.Clone(req.Context())
			out.Body = req.Body
		}
		target(out, ep)
		inv.sent.Store(false)
		inv.answered.Store(false)
		resp, err := p.transport.RoundTrip(out)
		if err == nil {
			inv.status = resp.StatusCode
			if resp.StatusCode >= 500 {
				p.fail(ep, now)
			} else {
				ep.succeeded()
			}
			return resp, nil
		}
		if req.Context().Err() != nil {
			if errors.Is(inv.Err(), context.DeadlineExceeded) && !inv.answered.Load() {
				p.fail(ep, now) // no answer in time: an outlier mark, as a reset is
			}
			return nil, err // the timeout or the caller
		}
		p.fail(ep, now)
		lastErr = fmt.Errorf("%s: %w", ep.host, err)
		if !inv.mayRetry(policy, body) {
			break
		}
	}
	return nil, lastErr
}

// target aims out at ep.
func target(out *http.Request, ep *endpoint) {
	u := out.URL
	u.Scheme, u.Host, u.User = ep.scheme, ep.host, ep.user
	if ep.basePath != "" {
		if u.RawPath != "" || ep.rawBase != "" {
			base, rest := ep.rawBase, u.RawPath
			if base == "" {
				base = ep.basePath
			}
			if rest == "" {
				rest = u.EscapedPath()
			}
			u.RawPath = base + rest
		}
		u.Path = ep.basePath + u.Path
	}
}

func (p *proxy) fail(ep *endpoint, now time.Time) {
	if d := ep.failed(now); d > 0 {
		p.metrics.ejections.Inc()
		p.log.Warn("endpoint ejected after consecutive failures", "endpoint", ep.host, "for", d)
	}
}

// errorHandler answers a failed invocation with a problem: 503 when no
// endpoint could be tried, 504 when the timeout expired, 502 otherwise.
func (p *proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	inv := invocationOf(r)
	var prob *httpapi.Problem
	switch {
	case errors.Is(err, errNoEndpoint):
		inv.result = resultUnavailable
		prob = httpapi.NewProblem(http.StatusServiceUnavailable, "no-endpoint",
			fmt.Sprintf("dependency %q has no available endpoint: every endpoint is ejected after repeated failures", inv.dependency))
	case errors.Is(inv.Err(), context.DeadlineExceeded):
		inv.result = resultTimeout
		prob = httpapi.NewProblem(http.StatusGatewayTimeout, "invoke-timeout",
			fmt.Sprintf("dependency %q did not answer in time (set the Ddi-Timeout header to wait longer)", inv.dependency))
	case inv.Err() != nil:
		inv.result = resultCanceled
		return // the caller went away
	default:
		inv.result = resultError
		prob = httpapi.NewProblem(http.StatusBadGateway, "bad-gateway",
			fmt.Sprintf("dependency %q could not be reached: %v", inv.dependency, err))
	}
	prob.Dependency = inv.dependency
	httpapi.WriteProblem(w, prob)
}

// replayableBody lets a request body be sent again after a connection
// failure as long as the transport has read nothing of it. The transport's
// Close is ignored; RoundTrip closes the real body when it is done.
type replayableBody struct {
	rc   io.ReadCloser
	read bool
}

func (b *replayableBody) Read(p []byte) (int, error) {
	b.read = true
	return b.rc.Read(p)
}

func (b *replayableBody) Close() error { return nil }

// bufferPool recycles ReverseProxy copy buffers through a channel, which
// (unlike sync.Pool with slices) does not allocate on Put.
type bufferPool struct {
	free chan []byte
	size int
}

func newBufferPool(n, size int) *bufferPool {
	return &bufferPool{free: make(chan []byte, n), size: size}
}

func (bp *bufferPool) Get() []byte {
	select {
	case b := <-bp.free:
		return b
	default:
		return make([]byte, bp.size)
	}
}

func (bp *bufferPool) Put(b []byte) {
	if cap(b) < bp.size {
		return
	}
	select {
	case bp.free <- b[:bp.size]:
	default:
	}
}
