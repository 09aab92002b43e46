// Package httpapi holds the small pieces every ddi HTTP API shares: RFC 9457
// problem documents, strict JSON decoding with a size limit, and JSON
// responses. It must not know about any particular route.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// MaxHeaderBytes bounds the request line and headers on every listener
// (net/http answers 431 beyond it); ddi's own requests need a few hundred
// bytes, a projected token about one kilobyte.
const MaxHeaderBytes = 64 << 10

// BodyTimeout bounds the time a client may take to send a JSON body, so
// a client that trickles bytes (slowloris) cannot hold a handler. The
// servers' ReadHeaderTimeout bounds the headers the same way.
var BodyTimeout = 10 * time.Second

// ProblemBase prefixes problem type URIs.
const ProblemBase = "https://ddi.dev/problems/"

// Problem is an RFC 9457 problem document. Extra members (field,
// dependency, selector) name what the problem is about.
type Problem struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Status     int    `json:"status"`
	Detail     string `json:"detail,omitempty"`
	Field      string `json:"field,omitempty"`
	Dependency string `json:"dependency,omitempty"`
	Selector   string `json:"selector,omitempty"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Detail
	}
	return p.Title
}

// NewProblem builds a problem; kind is the last segment of its type URI.
func NewProblem(status int, kind, detail string) *Problem {
	return &Problem{Type: ProblemBase + kind, Title: http.StatusText(status), Status: status, Detail: detail}
}

// WriteProblem writes p with Content-Type application/problem+json.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// DecodeJSON reads one JSON value from r's body into v: at most
// MaxBodyBytes, unknown fields refused, nothing after the value. The error
// is a 400 (or 413) problem that names the offending field where it can.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) *Problem {
	// The deadline is cleared afterwards: a stream that goes on answering
	// after its body must not be cut by it.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(BodyTimeout))
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// The connection is not reused: the server then does not wait
		// for the rest of a body that may never come.
		w.Header().Set("Connection", "close")
		return decodeProblem(err)
	}
	_ = rc.SetReadDeadline(time.Time{})
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return NewProblem(http.StatusBadRequest, "malformed-json", "request body holds more than one JSON value")
	}
	return nil
}

func decodeProblem(err error) *Problem {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	var netErr interface{ Timeout() bool }
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		return NewProblem(http.StatusRequestTimeout, "body-too-slow", fmt.Sprintf("request body not received within %s: send it at once", BodyTimeout))
	case errors.As(err, &maxErr):
		return NewProblem(http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("request body exceeds %d bytes", maxErr.Limit))
	case errors.Is(err, io.EOF):
		return NewProblem(http.StatusBadRequest, "malformed-json", "request body is empty: send a JSON object")
	case errors.As(err, &syntaxErr):
		return NewProblem(http.StatusBadRequest, "malformed-json", fmt.Sprintf("request body is not valid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr))
	case errors.As(err, &typeErr):
		p := NewProblem(http.StatusBadRequest, "invalid-field", fmt.Sprintf("field %q must be a JSON %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value))
		p.Field = typeErr.Field
		return p
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		p := NewProblem(http.StatusBadRequest, "unknown-field", fmt.Sprintf("unknown field %q: remove it (see docs/api.md for the accepted fields)", field))
		p.Field = field
		return p
	case errors.Is(err, io.ErrUnexpectedEOF):
		return NewProblem(http.StatusBadRequest, "malformed-json", "request body ends in the middle of a JSON value")
	}
	return NewProblem(http.StatusBadRequest, "malformed-json", "request body is not valid JSON: "+err.Error())
}

// FieldProblem makes a 400 problem about one field.
func FieldProblem(field, detail string) *Problem {
	p := NewProblem(http.StatusBadRequest, "invalid-field", detail)
	p.Field = field
	return p
}

// ValidationProblem turns a validation error into a 400 problem; a
// *registry.FieldError names its field.
func ValidationProblem(err error) *Problem {
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		return FieldProblem(fe.Field, err.Error())
	}
	return NewProblem(http.StatusBadRequest, "invalid-input", err.Error())
}

// Gate bounds how many requests of one kind run at once (watches, long
// polls); Enter beyond the bound is refused with TooBusy's problem.
type Gate struct {
	n   atomic.Int64
	Max int64
}

// Enter takes a place, or reports false when all are taken.
func (g *Gate) Enter() bool {
	if g.n.Add(1) > g.Max {
		g.n.Add(-1)
		return false
	}
	return true
}

// Leave gives a place back.
func (g *Gate) Leave() { g.n.Add(-1) }

// TooBusy is the 429 problem of a full Gate; what names the requests.
func TooBusy(what string, max int64) *Problem {
	return NewProblem(http.StatusTooManyRequests, "too-many-requests",
		fmt.Sprintf("%d %s are open already, the most this listener allows: close one first", max, what))
}
