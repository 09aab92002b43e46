package sidecar

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
)

// This file is the HTTP/1.1 message syntax of the invoke fast path
// (relay.go): request and response heads, and chunked bodies, parsed
// strictly (RFC 9112). Anything ambiguous is an error, never a guess, so
// that the sidecar and a provider cannot read one message two ways
// (request smuggling).

// field is one header field of a parsed head; both halves are slices of
// the head's bytes.
type field struct{ name, value []byte }

// head is a parsed request or response head.
type head struct {
	// Request line.
	method, target []byte
	minor          byte // HTTP/1.x
	// Status line.
	status int
	reason []byte

	fields []field

	contentLength int64 // -1: none
	chunked       bool
	close         bool     // Connection: close
	upgrade       bool     // Connection: upgrade
	connTokens    [][]byte // the field names listed in Connection
	hosts         int
	host          []byte
	timeout       []byte   // Ddi-Timeout
	origin        []string // nil: none
	hasTrailer    bool
}

func (h *head) reset() {
	fields, tokens := h.fields[:0], h.connTokens[:0]
	*h = head{fields: fields, connTokens: tokens, contentLength: -1}
}

// headError is a malformed message: status is what the sidecar answers
// (400 or 501 for a caller's request; for a provider's response the
// caller gets 502).
type headError struct {
	status int
	detail string
}

func (e *headError) Error() string { return e.detail }

func badHead(detail string) *headError {
	return &headError{status: http.StatusBadRequest, detail: detail}
}

// errHeadTooLarge: the head does not fit the reader's buffer.
var errHeadTooLarge = errors.New("message head too large")

// peekHead returns the bytes of the head at the start of br, up to and
// including the blank line, without consuming them. It fails with
// errHeadTooLarge when no blank line fits in br's buffer.
func peekHead(br *bufio.Reader) ([]byte, error) {
	from := 0
	for {
		buf, err := br.Peek(br.Buffered())
		if i := bytes.Index(buf[max(0, from-3):], crlfcrlf); i >= 0 {
			return buf[:max(0, from-3)+i+4], nil
		}
		from = len(buf)
		if len(buf) >= br.Size() {
			return nil, errHeadTooLarge
		}
		if err != nil {
			return nil, err
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errHeadTooLarge
			}
			if len(buf) > 0 && errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// parseRequestLine parses "METHOD SP target SP HTTP/1.x" from the head's
// first line and returns the rest of the head.
func parseRequestLine(b []byte, h *head) ([]byte, *headError) {
	line, rest, _ := bytes.Cut(b, crlf)
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return nil, badHead("malformed request line: want METHOD SP target SP HTTP/1.1")
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return nil, badHead("malformed request line: want METHOD SP target SP HTTP/1.1")
	}
	h.method, h.target = line[:sp1], line[sp1+1:sp1+1+sp2]
	proto := line[sp1+2+sp2:]
	if !isToken(h.method) {
		return nil, badHead("malformed request line: the method is not a token")
	}
	for _, c := range h.target {
		if c <= ' ' || c == 0x7f {
			return nil, badHead("malformed request line: the target has a control character or space")
		}
	}
	if len(proto) != 8 || string(proto[:7]) != "HTTP/1." || proto[7] < '0' || proto[7] > '9' {
		return nil, badHead("malformed request line: the version is not HTTP/1.x")
	}
	h.minor = proto[7] - '0'
	return rest, nil
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason]".
func parseStatusLine(b []byte, h *head) ([]byte, *headError) {
	line, rest, _ := bytes.Cut(b, crlf)
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ' {
		return nil, badHead("malformed status line")
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return nil, badHead("malformed status code")
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 || code > 599 || (len(line) > 12 && line[12] != ' ') {
		return nil, badHead("malformed status code")
	}
	if len(line) > 13 {
		h.reason = line[13:]
		for _, c := range h.reason {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return nil, badHead("malformed reason phrase")
			}
		}
	}
	h.minor, h.status = line[7]-'0', code
	return rest, nil
}

// parseFields parses the header section b (the lines after the start
// line, ending with the blank line) into h, with the framing rules of
// RFC 9112 section 6: Transfer-Encoding must be exactly "chunked" and
// excludes Content-Length; several Content-Lengths must agree.
func parseFields(b []byte, h *head) *headError {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, crlf)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badHead("obsolete line folding in a header field")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return badHead("malformed header field (a field name is a token followed directly by a colon)")
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return badHead("header field " + string(name) + " has a control character")
			}
		}
		h.fields = append(h.fields, field{name, value})
		switch {
		case equalFold(name, "Content-Length"):
			n, ok := parseLength(value)
			if !ok {
				return badHead("invalid Content-Length")
			}
			if h.contentLength >= 0 && h.contentLength != n {
				return badHead("two different Content-Length values")
			}
			h.contentLength = n
		case equalFold(name, "Transfer-Encoding"):
			if h.chunked || !equalFold(value, "chunked") {
				return &headError{status: http.StatusNotImplemented, detail: "Transfer-Encoding " + string(value) + " is not supported: only chunked is"}
			}
			h.chunked = true
		case equalFold(name, "Connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = trimOWS(tok)
				switch {
				case len(tok) == 0:
				case equalFold(tok, "close"):
					h.close = true
				case equalFold(tok, "upgrade"):
					h.upgrade = true
				}
				if len(tok) > 0 {
					h.connTokens = append(h.connTokens, tok)
				}
			}
		case equalFold(name, "Host"):
			h.hosts++
			h.host = value
		case equalFold(name, "Ddi-Timeout"):
			h.timeout = value
		case equalFold(name, "Origin"):
			h.origin = append(h.origin, string(value))
		case equalFold(name, "Trailer"):
			h.hasTrailer = true
		}
	}
	if h.chunked && h.contentLength >= 0 {
		return badHead("both Transfer-Encoding and Content-Length")
	}
	return nil
}

// hopByHop reports whether a field must not be forwarded (RFC 9110
// section 7.6.1): the connection's own fields, Proxy-*, and every field
// the Connection header names.
func (h *head) hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		if equalFold(name, "TE") {
			return true
		}
	case 7:
		if equalFold(name, "Upgrade") || equalFold(name, "Trailer") {
			return true
		}
	case 10:
		if equalFold(name, "Connection") || equalFold(name, "Keep-Alive") {
			return true
		}
	case 17:
		if equalFold(name, "Transfer-Encoding") {
			return true
		}
	}
	if len(name) > 6 && equalFold(name[:6], "Proxy-") {
		return true
	}
	for _, tok := range h.connTokens {
		if bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}

// parseLength parses a Content-Length value: 1 to 18 digits.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold is an ASCII case-insensitive comparison without allocation.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if c|0x20 != d|0x20 || (c|0x20 < 'a' || c|0x20 > 'z') && c != d {
			return false
		}
	}
	return true
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-32] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// Chunked bodies.

// maxChunkLine bounds a chunk-size line (with extensions); maxTrailer
// bounds a trailer section.
const (
	maxChunkLine = 4096
	maxTrailer   = 8192
)

var errBadChunk = errors.New("invalid chunked encoding")

// parseChunkSize parses a chunk-size line without its CRLF: hex digits,
// then optionally whitespace and chunk extensions (ignored).
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, errBadChunk
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, errBadChunk
	}
	rest := trimOWS(line[i:])
	if len(rest) > 0 && rest[0] != ';' {
		return 0, errBadChunk
	}
	for _, c := range rest {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return 0, errBadChunk
		}
	}
	return n, nil
}

// scanChunked checks a chunked body that starts at b. It returns the
// length of the complete body (with the trailer section) when b holds
// all of it, 0 when b ends first, or errBadChunk as soon as b shows an
// error.
func scanChunked(b []byte) (int, error) {
	off := 0
	for {
		i := bytes.Index(b[off:], crlf)
		if i < 0 {
			if len(b)-off > maxChunkLine || bytes.IndexByte(b[off:], '\n') >= 0 {
				return 0, errBadChunk
			}
			return 0, nil
		}
		n, err := parseChunkSize(b[off : off+i])
		if err != nil {
			return 0, err
		}
		off += i + 2
		if n == 0 {
			// Trailer section: field lines, then a blank line.
			for {
				j := bytes.Index(b[off:], crlf)
				if j < 0 {
					return 0, nil
				}
				if j == 0 {
					return off + 2, nil
				}
				var h head
				h.contentLength = -1
				if parseFields(b[off:off+j+2], &h) != nil {
					return 0, errBadChunk
				}
				off += j + 2
			}
		}
		if int64(len(b)-off) < n+2 {
			return 0, nil
		}
		off += int(n)
		if b[off] != '\r' || b[off+1] != '\n' {
			return 0, errBadChunk
		}
		off += 2
	}
}

// chunkedReader decodes a chunked body from r, strictly. The trailer
// section, checked, is kept in trailer (its field lines, each ending in
// CRLF, without the blank line) once Read returns io.EOF.
type chunkedReader struct {
	r       *bufio.Reader
	left    int64 // data bytes left in the current chunk
	started bool
	done    bool
	trailer []byte
}

func (c *chunkedReader) reset(r *bufio.Reader) {
	*c = chunkedReader{r: r, trailer: c.trailer[:0]}
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		if c.started {
			if err := c.expectCRLF(); err != nil {
				return 0, err
			}
		}
		c.started = true
		line, err := c.line()
		if err != nil {
			return 0, err
		}
		n, err := parseChunkSize(line)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			if err := c.readTrailer(); err != nil {
				return 0, err
			}
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// ready reports whether Read can return data or the end without waiting
// for the network: what it needs next is in the buffer.
func (c *chunkedReader) ready() bool {
	if c.done {
		return true
	}
	if c.left > 0 {
		return c.r.Buffered() > 0
	}
	b, _ := c.r.Peek(c.r.Buffered())
	if c.started {
		if len(b) < 2 {
			return false
		}
		b = b[2:]
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return false
	}
	n, err := parseChunkSize(bytes.TrimSuffix(b[:i], []byte("\r")))
	switch {
	case err != nil:
		return true // Read fails at once
	case n > 0:
		return len(b) > i+1
	}
	rest := b[i+1:]
	return bytes.HasPrefix(rest, crlf) || bytes.Contains(rest, crlfcrlf)
}

// line reads one CRLF-terminated line and returns it without CRLF.
func (c *chunkedReader) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errBadChunk
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' || len(line) > maxChunkLine {
		return nil, errBadChunk
	}
	return line[:len(line)-2], nil
}

func (c *chunkedReader) expectCRLF() error {
	b, err := c.r.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errBadChunk
	}
	_, _ = c.r.Discard(2)
	return nil
}

func (c *chunkedReader) readTrailer() error {
	for {
		line, err := c.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if len(c.trailer)+len(line) > maxTrailer {
			return errBadChunk
		}
		var h head
		h.contentLength = -1
		if parseFields(append(line[:len(line):len(line)], '\r', '\n'), &h) != nil {
			return errBadChunk
		}
		c.trailer = append(append(c.trailer, line...), '\r', '\n')
	}
}

// forwardTrailer appends the trailer fields of t that may travel on:
// not hop-by-hop, not framing.
func forwardTrailer(dst, t []byte) []byte {
	for len(t) > 0 {
		var line []byte
		line, t, _ = bytes.Cut(t, crlf)
		name, _, _ := bytes.Cut(line, []byte(":"))
		var h head
		if h.hopByHop(name) || equalFold(name, "Content-Length") || equalFold(name, "Host") {
			continue
		}
		dst = append(append(dst, line...), '\r', '\n')
	}
	return dst
}

// hasField reports whether the head has a field of this name (any case).
func (h *head) hasField(name string) bool {
	for _, f := range h.fields {
		if equalFold(f.name, name) {
			return true
		}
	}
	return false
}
