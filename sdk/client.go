package ddi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"ddi.dev/ddi/sdk/wellknown"
)

// DefaultAddr is the sidecar's address when DDI_ADDR is unset.
const DefaultAddr = "http://" + wellknown.SidecarListen

// EnvAddr names the environment variable that holds the sidecar's base URL.
// The ddi webhook and `ddi run` set it.
const EnvAddr = "DDI_ADDR"

// Client talks to the ddi sidecar. Its zero value is ready to use: it reads
// the sidecar's address from DDI_ADDR (default http://127.0.0.1:7471) on
// first use. A Client is safe for concurrent use and must not be copied
// after first use.
type Client struct {
	// Addr is the sidecar's base URL, such as "http://127.0.0.1:7471". Empty
	// means DDI_ADDR, then DefaultAddr. A bare "host:port" is taken as http.
	Addr string

	// HTTPClient sends the requests to the sidecar. Nil means a client with
	// its own transport that never goes through a proxy. Tests inject a
	// client whose transport answers in-process.
	HTTPClient *http.Client

	initOnce sync.Once
	base     string // normalised Addr, no trailing slash
	initErr  error
	hc       *http.Client

	cache cache // kept current by Start; see cache.go
}

// defaultTransport is shared by zero-value clients: loopback, no proxy,
// enough idle connections for a busy function.
var defaultTransport = &http.Transport{
	Proxy: nil,
	DialContext: (&net.Dialer{
		Timeout:   5 * time.Second,
		KeepAlive: 30 * time.Second,
	}).DialContext,
	MaxIdleConns:        256,
	MaxIdleConnsPerHost: 256,
	IdleConnTimeout:     90 * time.Second,
}

func (c *Client) init() error {
	c.initOnce.Do(func() {
		addr := c.Addr
		if addr == "" {
			addr = os.Getenv(EnvAddr)
		}
		if addr == "" {
			addr = DefaultAddr
		}
		if !strings.Contains(addr, "://") {
			addr = "http://" + addr
		}
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			c.initErr = fmt.Errorf("ddi: sidecar address %q (from Client.Addr or %s) is not an http URL such as %s", addr, EnvAddr, DefaultAddr)
			return
		}
		c.base = strings.TrimSuffix(u.String(), "/")
		c.hc = c.HTTPClient
		if c.hc == nil {
			c.hc = &http.Client{Transport: defaultTransport}
		}
	})
	return c.initErr
}

// BaseURL returns the sidecar's base URL the client uses.
func (c *Client) BaseURL() (string, error) {
	if err := c.init(); err != nil {
		return "", err
	}
	return c.base, nil
}

// do sends a request to the sidecar and decodes a 2xx JSON answer into out
// (when out is not nil). Other answers become a *Problem.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	if err := c.init(); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("ddi: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("ddi: sidecar at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return problemFrom(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("ddi: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Bindings returns all of the function's bindings, the dependencies that
// have no provider, and the snapshot version, asking the sidecar.
func (c *Client) Bindings(ctx context.Context) (Snapshot, error) {
	var s Snapshot
	err := c.do(ctx, http.MethodGet, "/v1/bindings", nil, &s)
	return s, err
}

// Resolve returns the binding of one dependency. Once Start has loaded the
// cache it answers from memory without allocating; otherwise it asks the
// sidecar. A dependency that has no provider, or that the function never
// declared, is a *Problem for which IsUnresolved is true.
func (c *Client) Resolve(ctx context.Context, name string) (Binding, error) {
	if st := c.cache.state.Load(); st != nil && st.live {
		if b, ok := st.bindings[name]; ok {
			return *b, nil
		}
		return Binding{}, st.missing(name)
	}
	return c.fetch(ctx, name)
}

// fetch asks the sidecar for one binding.
func (c *Client) fetch(ctx context.Context, name string) (Binding, error) {
	var b Binding
	err := c.do(ctx, http.MethodGet, "/v1/bindings/"+url.PathEscape(name), nil, &b)
	return b, err
}

// WaitReady blocks until the sidecar answers /readyz with 200 (its first
// snapshot is loaded) or ctx ends. It retries with a short backoff, so it is
// safe to call while the sidecar is still starting.
func (c *Client) WaitReady(ctx context.Context) error {
	if err := c.init(); err != nil {
		return err
	}
	delay := 5 * time.Millisecond
	for {
		err := c.do(ctx, http.MethodGet, "/readyz", nil, nil)
		if err == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("ddi: sidecar at %s not ready: %w (last error: %v)", c.base, ctx.Err(), err)
		case <-t.C:
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}
