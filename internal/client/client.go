package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"ddi.dev/ddi/internal/httpapi"
)

// DefaultTimeout bounds a unary call whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// maxResponseBytes bounds a unary response body.
const maxResponseBytes = 64 << 20

// Client calls the control plane at BaseURL.
type Client struct {
	// BaseURL is the control plane's root, such as http://127.0.0.1:7470.
	BaseURL string
	// HTTP sends the requests; nil means a shared default client. A client
	// with a Timeout also cuts streams after that time.
	HTTP *http.Client
	// TokenFile, when set, is read before every request and its trimmed
	// content sent as "Authorization: Bearer <token>".
	TokenFile string
	// Hint, when set, is added to the error of a request that reached no
	// control plane (refused, unresolvable, timed out): where to start one
	// or where to point the client.
	Hint string
}

var defaultHTTP = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	ForceAttemptHTTP2:     true,
	MaxIdleConns:          16,
	MaxIdleConnsPerHost:   8,
	IdleConnTimeout:       90 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ExpectContinueTimeout: time.Second,
}}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// StatusCode returns the HTTP status of a *httpapi.Problem in err's chain,
// or 0 when err is not a problem (a transport failure, for example).
func StatusCode(err error) int {
	var p *httpapi.Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// newRequest builds a request to path (already escaped) with an optional
// JSON body and the bearer token.
func (c *Client) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	if c.BaseURL == "" {
		return nil, errors.New("control plane client: BaseURL is empty")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s request: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build %s %s request: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.TokenFile != "" {
		tok, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	return req, nil
}

// do sends a unary request and decodes a 2xx JSON answer into out (when
// out is non-nil). It returns the status code.
func (c *Client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return 0, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		if c.Hint != "" {
			return 0, fmt.Errorf("%s %s: %w (%s)", method, path, err, c.Hint)
		}
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, readProblem(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// readProblem turns a non-2xx response into a *httpapi.Problem. A body that
// is not a problem document becomes the detail (shortened).
func readProblem(resp *http.Response) *httpapi.Problem {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var p httpapi.Problem
	if err := json.Unmarshal(b, &p); err == nil && (p.Type != "" || p.Title != "" || p.Detail != "") {
		if p.Status == 0 {
			p.Status = resp.StatusCode
		}
		if p.Title == "" {
			p.Title = http.StatusText(resp.StatusCode)
		}
		return &p
	}
	detail := strings.TrimSpace(string(b))
	if len(detail) > 512 {
		detail = detail[:512] + "..."
	}
	if detail == "" {
		detail = fmt.Sprintf("control plane answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return &httpapi.Problem{Type: "about:blank", Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode, Detail: detail}
}
