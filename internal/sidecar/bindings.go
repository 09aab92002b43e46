package sidecar

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/registry"
)

// Long-poll bounds of GET /v1/bindings/{name}?revision=N&wait=D.
const (
	DefaultPollWait = 30 * time.Second
	MaxPollWait     = 5 * time.Minute
)

// Shared header values: assigning them to a response's header map does not
// allocate.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// writeEntry writes a binding's pre-encoded JSON. This is the hot path: no
// encoding and no allocation beyond what net/http does itself.
func writeEntry(w http.ResponseWriter, e *entry) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = e.length
	h["Cache-Control"] = noStore
	_, _ = w.Write(e.body)
}

func (s *Sidecar) handleList(w http.ResponseWriter, r *http.Request) {
	snap := s.cache.load()
	if !snap.loaded {
		httpapi.WriteProblem(w, s.notReadyProblem())
		return
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = snap.listLength
	h["Cache-Control"] = noStore
	_, _ = w.Write(snap.listBody)
}

func (s *Sidecar) handleGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if r.URL.RawQuery == "" {
		if e := s.cache.load().bindings[name]; e != nil {
			writeEntry(w, e)
			return
		}
	}
	if err := registry.ValidateName("name", name); err != nil {
		httpapi.WriteProblem(w, httpapi.ValidationProblem(err))
		return
	}
	revision, wait, poll, prob := pollParams(r.URL.RawQuery)
	if prob != nil {
		httpapi.WriteProblem(w, prob)
		return
	}
	if !poll {
		s.writeBinding(w, name)
		return
	}
	if !s.waiters.Enter() {
		httpapi.WriteProblem(w, httpapi.TooBusy("watches and long polls", s.waiters.Max))
		return
	}
	defer s.waiters.Leave()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		snap := s.cache.load()
		if e := snap.bindings[name]; e != nil && e.binding.Revision > revision {
			writeEntry(w, e)
			return
		}
		select {
		case <-snap.changed:
		case <-timer.C:
			s.writeBinding(w, name)
			return
		case <-s.closing:
			s.writeBinding(w, name)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// writeBinding answers with the current binding of name, or the problem
// that explains its absence.
func (s *Sidecar) writeBinding(w http.ResponseWriter, name string) {
	snap := s.cache.load()
	if e := snap.bindings[name]; e != nil {
		writeEntry(w, e)
		return
	}
	httpapi.WriteProblem(w, s.missingProblem(snap, name))
}

// missingProblem explains why name has no binding in snap: no snapshot yet
// (503), unresolved (404 naming dependency and selector), or never
// declared (404).
func (s *Sidecar) missingProblem(snap *snapshot, name string) *httpapi.Problem {
	if !snap.loaded {
		return s.notReadyProblem()
	}
	if u, ok := snap.unresolved[name]; ok {
		p := httpapi.NewProblem(http.StatusNotFound, "unresolved",
			fmt.Sprintf("dependency %q (selector %q) is unresolved: %s", u.Name, u.Selector, u.Reason))
		p.Title = "Dependency unresolved"
		p.Dependency, p.Selector = u.Name, u.Selector
		return p
	}
	if d, ok := s.deps[name]; ok {
		p := httpapi.NewProblem(http.StatusNotFound, "unresolved",
			fmt.Sprintf("dependency %q (selector %q) is unresolved: the control plane's snapshot does not mention it; check that the workload declares it", name, d.SelectorString()))
		p.Title = "Dependency unresolved"
		p.Dependency, p.Selector = name, d.SelectorString()
		return p
	}
	known := slices.Clone(snap.names)
	for n := range snap.unresolved {
		known = append(known, n)
	}
	for n := range s.deps {
		if !slices.Contains(known, n) {
			known = append(known, n)
		}
	}
	slices.Sort(known)
	list := "none"
	if len(known) > 0 {
		list = strings.Join(known, ", ")
	}
	p := httpapi.NewProblem(http.StatusNotFound, "unknown-dependency",
		fmt.Sprintf("this function declares no dependency %q (declared: %s)", name, list))
	p.Title = "Unknown dependency"
	p.Dependency = name
	return p
}

func (s *Sidecar) notReadyProblem() *httpapi.Problem {
	return httpapi.NewProblem(http.StatusServiceUnavailable, "not-ready",
		"the sidecar has not received its first snapshot from the control plane yet; retry shortly (GET /readyz says why)")
}

// pollParams reads ?revision=N&wait=D. poll is true when revision is
// given; wait alone is refused. Other parameters are ignored.
func pollParams(rawQuery string) (revision int64, wait time.Duration, poll bool, prob *httpapi.Problem) {
	if rawQuery == "" {
		return 0, 0, false, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, 0, false, httpapi.NewProblem(http.StatusBadRequest, "invalid-query", "the query string is malformed: "+err.Error())
	}
	rs, hasRev := q["revision"]
	ws, hasWait := q["wait"]
	if !hasRev {
		if hasWait {
			return 0, 0, false, httpapi.FieldProblem("revision", "wait needs revision: send ?revision=N&wait=30s to wait for a revision greater than N")
		}
		return 0, 0, false, nil
	}
	revision, err = strconv.ParseInt(rs[0], 10, 64)
	if err != nil || revision < 0 {
		return 0, 0, false, httpapi.FieldProblem("revision", fmt.Sprintf("revision %q is not a non-negative integer", rs[0]))
	}
	wait = DefaultPollWait
	if hasWait {
		wait, err = parseWait(ws[0])
		if err != nil || wait <= 0 || wait > MaxPollWait {
			return 0, 0, false, httpapi.FieldProblem("wait", fmt.Sprintf("wait %q must be a duration above 0 and at most %s, such as 30s", ws[0], MaxPollWait))
		}
	}
	return revision, wait, true, nil
}

// parseWait reads a Go duration ("30s") or a number of seconds ("30").
func parseWait(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n > MaxPollWait.Seconds() {
			return MaxPollWait + 1, nil
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}
