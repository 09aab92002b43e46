package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// Sidecar is one function's injector. Create it with New and run it with
// Run (or Serve, on a listener of your own) exactly once.
type Sidecar struct {
	cfg     Config
	log     *slog.Logger
	cache   *cache
	metrics *metrics
	stream  *streamer
	proxy   *proxy
	grpc    *grpcProxy
	regs    *registrar
	files   *projector // nil when BindingRoot is empty
	deps    map[string]registry.Dependency
	handler http.Handler

	invokeRoute *route       // the invoke route's metrics, shared by both invoke paths
	getRoute    *route       // GET /v1/bindings/{name}'s metrics, shared likewise
	handoffs    atomic.Int64 // connections the fast path handed to net/http

	activity  activity // requests on the API, with Config.OutliveApp
	closeOnce sync.Once
	closing   chan struct{} // closed when shutdown begins: long polls and watches return

	// waiters bounds the watches and long polls open at once.
	waiters httpapi.Gate
}

// MaxWaiters bounds the watches (GET /v1/watch) and long polls
// (GET /v1/bindings/{name}?wait=) a sidecar holds open at once; one more is
// refused with 429. A function needs a handful.
var MaxWaiters int64 = 256

// New validates cfg, applies its defaults and builds a Sidecar. It does no
// I/O besides reading CAFile.
func New(cfg Config, logger *slog.Logger) (*Sidecar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sidecar config: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	httpClient, err := controlPlaneHTTP(cfg.CAFile, cfg.CA)
	if err != nil {
		return nil, err
	}
	cl := &client.Client{BaseURL: cfg.ControlPlane, HTTP: httpClient, TokenFile: cfg.TokenFile}
	s := &Sidecar{
		cfg:     cfg,
		log:     logger,
		cache:   newCache(),
		metrics: newMetrics(),
		deps:    make(map[string]registry.Dependency, len(cfg.Dependencies)),
		closing: make(chan struct{}),
	}
	s.waiters.Max = MaxWaiters
	for _, d := range cfg.Dependencies {
		s.deps[d.Alias] = d
	}
	s.stream = &streamer{
		client: cl,
		cache:  s.cache,
		hello: protocol.Hello{
			SidecarID:    cfg.SidecarID,
			Consumer:     cfg.Consumer,
			Dependencies: cfg.dependencyStrings(),
		},
		log:              logger.With("component", "stream"),
		metrics:          s.metrics,
		minBackoff:       cfg.ReconnectMin,
		maxBackoff:       cfg.ReconnectMax,
		heartbeatTimeout: cfg.HeartbeatTimeout,
		podInfoDir:       cfg.PodInfoDir,
		podInfoInterval:  cfg.PodInfoInterval,
	}
	s.proxy = newProxy(cfg.InvokeTimeout, s.metrics, logger.With("component", "invoke"))
	s.grpc = newGRPCProxy(s.proxy)
	s.stream.onApply = s.proxy.endpoints.prune
	host, _ := os.Hostname()
	s.regs = newRegistrar(cl, cfg.Consumer.Namespace, registrationOwner(cfg.Consumer, host), cfg.RegistrationTTL, s.metrics, logger.With("component", "registrations"))
	if cfg.BindingRoot != "" {
		s.files = &projector{root: cfg.BindingRoot, cache: s.cache, metrics: s.metrics, log: logger.With("component", "files")}
		s.stream.files = s.files
	}
	s.handler = s.routes()
	return s, nil
}

// controlPlaneHTTP builds the HTTP client of the control-plane connection:
// no overall timeout (the stream is long-lived), optional private CAs from
// caFile and caPEM (Validate has checked caPEM).
func controlPlaneHTTP(caFile string, caPEM []byte) (*http.Client, error) {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	if caFile == "" && len(caPEM) == 0 {
		return &http.Client{Transport: tr}, nil
	}
	pool := x509.NewCertPool()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("sidecar config: CAFile: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &registry.FieldError{Field: "CAFile", Value: caFile, Reason: "holds no PEM certificate"}
		}
	}
	if len(caPEM) > 0 && !pool.AppendCertsFromPEM(caPEM) {
		return nil, &registry.FieldError{Field: "CA", Reason: "holds no PEM certificate"}
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// Handler returns the sidecar's HTTP API, for tests and embedding.
func (s *Sidecar) Handler() http.Handler { return s.handler }

// SidecarID returns the id the sidecar announces to the control plane. It
// is new in every process; registrations record a stable owner instead
// (registrationOwner).
func (s *Sidecar) SidecarID() string { return s.cfg.SidecarID }

// Run listens on Config.Listen and serves until ctx ends (see Serve).
func (s *Sidecar) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves the API on ln, keeps the snapshot stream and the binding
// files current, and renews run-time registrations, until ctx ends. Then
// it stops accepting requests, ends long polls and watches, drains the
// rest, and deletes its run-time registrations within ShutdownTimeout. It
// removes nothing else: binding files stay for the function's last
// moments. It returns nil after a clean shutdown.
func (s *Sidecar) Serve(ctx context.Context, ln net.Listener) error {
	handler := s.handler
	if s.cfg.OutliveApp {
		handler = s.activity.wrap(handler)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    httpapi.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// HTTP/1.1, and HTTP/2 without TLS (prior knowledge) for gRPC calls.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.stream.run(bg) })
	if s.files != nil {
		wg.Go(func() { s.files.run(bg) })
	}
	s.log.Info("sidecar listening", "addr", ln.Addr().String(), "sidecar", s.cfg.SidecarID,
		"consumer", registry.Key(s.cfg.Consumer.Namespace, s.cfg.Consumer.Name), "control_plane", s.cfg.ControlPlane)

	msrv, err := s.serveMetrics()
	if err != nil {
		stop()
		wg.Wait()
		return err
	}
	fast := newFastServer(s, ln)
	go fast.acceptLoop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(fast) }()
	var serveErr error
	select {
	case <-ctx.Done():
		if s.cfg.OutliveApp {
			s.awaitApp(context.WithoutCancel(ctx))
		}
	case serveErr = <-errc:
	}

	s.closeOnce.Do(func() { close(s.closing) })
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("http shutdown incomplete", "err", err)
		_ = srv.Close()
	}
	_ = fast.Close()
	fast.shutdown(sctx)
	if msrv != nil {
		_ = msrv.Shutdown(sctx)
	}
	if serveErr == nil {
		serveErr = <-errc
	}
	s.regs.close(sctx)
	stop()
	wg.Wait()
	s.proxy.close()
	s.grpc.transport.CloseIdleConnections()
	tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	s.proxy.tracer.shutdown(tctx) // the spans still queued
	tcancel()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	s.log.Info("sidecar stopped")
	return serveErr
}

// serveMetrics starts Config.MetricsListen's server, which answers GET
// /metrics and 404 to everything else, or returns nil without one.
func (s *Sidecar) serveMetrics() (*http.Server, error) {
	if s.cfg.MetricsListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %w", s.cfg.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    httpapi.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() { _ = srv.Serve(ln) }()
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return srv, nil
}
