package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/registry/bolt"
)

// drainTimeout bounds the drain of a listener when its context ends.
const drainTimeout = 5 * time.Second

// Serve serves h on ln until ctx ends, then drains it: it stops
// accepting, gives requests in flight up to 5 s, and closes what is left
// (snapshot streams never end by themselves). It serves TLS when tlsConf
// is set (its GetCertificate or Certificates supply the certificate). It
// returns nil after a clean stop. `ddi controller` and `ddi dev` both
// serve the control plane through it.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, tlsConf *tls.Config, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: httpapi.MaxHeaderBytes, TLSConfig: tlsConf,
		// Failed handshakes (a sidecar without the CA) and other
		// connection errors, as structured logs.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = srv.Close()
	}()
	var err error
	if tlsConf != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}

// Local is a control plane on one machine (`ddi dev`, and the one `ddi
// demo` starts): a bbolt store in a directory, served on a loopback
// listener behind httpapi.LocalOnly, trusting every caller that reaches
// it.
type Local struct {
	// URL is where it serves, http://HOST:PORT.
	URL string

	store  *bolt.Store
	cancel context.CancelFunc
	run    chan error
	serve  chan error
}

// StartLocal opens the store in dataDir and serves the control plane on
// listen until Stop. It returns once the store is listed (10 s at most).
func StartLocal(ctx context.Context, dataDir, listen string, log *slog.Logger) (*Local, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data %s: %w", dataDir, err)
	}
	store, err := bolt.Open(filepath.Join(dataDir, "registry.db"), bolt.Options{})
	if err != nil {
		return nil, err
	}
	srv, err := New(Options{Store: store, Logger: log})
	if err != nil {
		store.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("--listen %s: %w", listen, err)
	}
	// The control plane trusts every caller that reaches it, so a web page
	// in a browser must not (DNS rebinding, cross-site POSTs).
	h := httpapi.LocalOnly(srv.Handler(), httpapi.LocalOptions{Listen: listen})
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &Local{URL: "http://" + ln.Addr().String(), store: store, cancel: cancel, run: make(chan error, 1), serve: make(chan error, 1)}
	go func() { l.run <- srv.Run(ctx) }()
	go func() {
		err := Serve(ctx, ln, h, nil, log)
		if err != nil {
			log.Error("control plane server failed", "err", err)
		}
		l.serve <- err
	}()
	select {
	case <-srv.Ready():
	case <-time.After(10 * time.Second):
		_ = l.Stop()
		return nil, errors.New("control plane did not become ready within 10s: the store did not list")
	}
	return l, nil
}

// Stop ends the streams, drains the server and closes the store.
func (l *Local) Stop() error {
	l.cancel()
	<-l.serve
	<-l.run
	return l.store.Close()
}
