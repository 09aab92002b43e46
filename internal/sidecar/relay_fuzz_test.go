package sidecar

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// FuzzRelayRequest feeds arbitrary bytes to the fast path's request
// parser and checks it against net/http's: whatever the relay accepts,
// net/http reads the same way (method, target, framing), so the relay and
// a Go provider can never disagree on where a request ends; and the relay
// never accepts Content-Length together with Transfer-Encoding.
func FuzzRelayRequest(f *testing.F) {
	for _, s := range []string{
		"GET /v1/invoke/greeter/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"POST /v1/invoke/greeter/x?q=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
		"POST /v1/invoke/g/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET /v1/invoke/gr%65eter/a%2Fb/c?q=%20 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"GET /v1/invoke/gre%2Feter/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		i := bytes.Index(data, crlfcrlf)
		if i < 0 {
			return
		}
		raw := data[:i+4]
		var h head
		h.reset()
		rest, herr := parseRequestLine(raw, &h)
		if herr == nil {
			herr = parseFields(rest, &h)
		}
		if herr != nil {
			return
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatalf("accepted both Content-Length and Transfer-Encoding: %q", raw)
		}
		if h.minor != 1 || !bytes.HasPrefix(h.target, []byte(invokePrefix)) || h.upgrade {
			return // handed to net/http
		}
		u, err := url.ParseRequestURI(string(h.target))
		if err != nil || h.hosts != 1 {
			return // refused with 400
		}
		name, path, rawPath := splitInvokePath(u)
		if gotName, gotPath, err := invokeTarget(h.target); err != nil || gotName != name || gotPath != path {
			t.Errorf("invokeTarget(%q) = %q, %q, %v; net/url reads %q, %q", h.target, gotName, gotPath, err, name, path)
		}
		// What the fast path forwards is what the net/http path forwards
		// (its escaped path and the query), unless it hands the request over.
		if !rawNameHasSlash(h.target) {
			want := rawPath
			if want == "" {
				want = (&url.URL{Path: path}).EscapedPath()
			}
			if want == "" {
				want = "/"
			}
			if u.RawQuery != "" || u.ForceQuery {
				want += "?" + u.RawQuery
			}
			tail := invokeTail(h.target)
			if unescaped, err := url.PathUnescape(strings.SplitN(tail, "?", 2)[0]); err != nil || unescaped != max(path, "/") {
				t.Errorf("invokeTail(%q) = %q decodes to %q (%v), want the path %q (net/http path sends %q)", h.target, tail, unescaped, err, path, want)
			}
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("relay accepted %q, net/http refused it: %v", raw, err)
		}
		if req.Method != string(h.method) || req.RequestURI != string(h.target) {
			t.Errorf("method, target = %q %q; net/http read %q %q", h.method, h.target, req.Method, req.RequestURI)
		}
		wantLen := max(h.contentLength, 0)
		if h.chunked {
			wantLen = -1
		}
		if req.ContentLength != wantLen {
			t.Errorf("framing of %q: relay length %d (chunked %v), net/http %d", raw, h.contentLength, h.chunked, req.ContentLength)
		}
		for _, fl := range h.fields {
			if h.hopByHop(fl.name) && equalFold(fl.name, "Content-Length") {
				t.Errorf("Content-Length counted as hop-by-hop in %q", raw)
			}
		}
	})
}

// FuzzRelayChunked checks the two chunked decoders of the fast path
// against each other and against net/http's: scanChunked (on a buffered
// body) and chunkedReader (on a stream) agree on validity and length, and
// what they accept decodes to what httputil's reader decodes.
func FuzzRelayChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n",
		"0\r\n\r\n",
		"2\r\nabc\r\n0\r\n\r\n",
		"zz\r\n",
		"fffffffffffffffff\r\n",
		"5\nhello\r\n0\r\n\r\n",
		"1\r\na\r\n0\r\nBad Field: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, scanErr := scanChunked(data)
		cr := &chunkedReader{r: bufio.NewReaderSize(bytes.NewReader(data), maxChunkLine+16)}
		decoded, readErr := io.ReadAll(cr)
		switch {
		case scanErr == nil && n > 0:
			if readErr != nil {
				t.Fatalf("scanChunked accepted %d bytes of %q, chunkedReader failed: %v", n, data, readErr)
			}
			if consumed := len(data) - cr.r.Buffered(); consumed != n {
				t.Fatalf("scanChunked length %d, chunkedReader consumed %d of %q", n, consumed, data)
			}
			std, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data)))
			if err != nil {
				t.Fatalf("relay accepted %q, net/http refused it: %v", data, err)
			}
			if !bytes.Equal(std, decoded) {
				t.Fatalf("decoded %q, net/http decoded %q", decoded, std)
			}
		case scanErr != nil:
			if readErr == nil {
				t.Fatalf("scanChunked refused %q (%v), chunkedReader accepted it", data, scanErr)
			}
		}
	})
}
