package ddi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ProblemBase prefixes the type URI of every problem the sidecar reports.
const ProblemBase = "https://ddi.dev/problems/"

// Problem kinds the sidecar reports (the last segment of Problem.Type).
const (
	KindUnresolved        = "unresolved"
	KindUnknownDependency = "unknown-dependency"
)

// Problem is an error the sidecar reported as an RFC 9457 problem document.
// Dependency, Selector and Field name what the problem is about.
type Problem struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Status     int    `json:"status"`
	Detail     string `json:"detail,omitempty"`
	Field      string `json:"field,omitempty"`
	Dependency string `json:"dependency,omitempty"`
	Selector   string `json:"selector,omitempty"`
}

// Error returns the problem's detail, or its title when it has none.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Detail
	}
	if p.Title != "" {
		return p.Title
	}
	return fmt.Sprintf("sidecar answered %d", p.Status)
}

// Kind returns the last segment of the problem's type URI, such as
// "unresolved" or "unknown-dependency".
func (p *Problem) Kind() string {
	return strings.TrimPrefix(p.Type, ProblemBase)
}

// IsUnresolved reports whether err is a problem saying that a dependency has
// no provider (kind "unresolved") or was never declared (kind
// "unknown-dependency").
func IsUnresolved(err error) bool {
	var p *Problem
	if !errors.As(err, &p) {
		return false
	}
	return p.Kind() == KindUnresolved || p.Kind() == KindUnknownDependency
}

// problemFrom turns a non-2xx response into an error: a *Problem when the
// body is a problem document, a Problem built from the status otherwise.
func problemFrom(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	p := &Problem{Status: resp.StatusCode}
	if err := json.Unmarshal(body, p); err != nil || p.Status == 0 {
		p = &Problem{
			Type:   "about:blank",
			Title:  http.StatusText(resp.StatusCode),
			Status: resp.StatusCode,
			Detail: strings.TrimSpace(string(body)),
		}
		if p.Detail == "" {
			p.Detail = fmt.Sprintf("sidecar answered %s", resp.Status)
		}
	}
	return p
}
