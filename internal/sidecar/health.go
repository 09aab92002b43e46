package sidecar

import (
	"fmt"
	"net/http"
	"time"

	"ddi.dev/ddi/internal/httpapi"
)

func (s *Sidecar) handleHealthz(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is the body of GET /readyz.
type readiness struct {
	Ready           bool   `json:"ready"`
	Connected       bool   `json:"connected"`
	SnapshotVersion int64  `json:"snapshotVersion"`
	Detail          string `json:"detail"`
}

// maxReadyWait bounds GET /readyz?wait=.
const maxReadyWait = 5 * time.Minute

// handleReadyz answers 200 once the first snapshot is loaded and projected
// to the binding files, whether or not the control plane is reachable now;
// it never waits for the function. With ?wait=DURATION (at most 5m) a
// sidecar that is not ready yet answers once it is, or when DURATION has
// passed: the ordered sidecar's postStart hook asks so, and learns of
// readiness within milliseconds instead of a polling period.
func (s *Sidecar) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxReadyWait {
			httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusBadRequest, "invalid-query",
				fmt.Sprintf("query parameter wait=%q: want a duration up to %s, such as 30s", v, maxReadyWait)))
			return
		}
		if !s.ready(s.cache.load()) {
			// A long poll like any other: under the same bound.
			if !s.waiters.Enter() {
				httpapi.WriteProblem(w, httpapi.TooBusy("watches and long polls", s.waiters.Max))
				return
			}
			s.awaitReady(r, d)
			s.waiters.Leave()
		}
	}
	snap := s.cache.load()
	connected, since, lastErr := s.stream.status()
	ready := s.ready(snap)
	body := readiness{Ready: ready, Connected: connected, SnapshotVersion: snap.version}
	at := since.UTC().Format(time.RFC3339)
	switch {
	case snap.loaded && connected:
		body.Detail = fmt.Sprintf("connected to the control plane since %s; serving snapshot %d", at, snap.version)
	case snap.loaded:
		body.Detail = fmt.Sprintf("control plane unreachable since %s (%s); serving last snapshot %d", at, lastErr, snap.version)
	case connected:
		body.Detail = "connected to the control plane; waiting for the first snapshot"
	default:
		body.Detail = fmt.Sprintf("waiting for the first snapshot: control plane unreachable since %s (%s)", at, lastErr)
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
		if snap.loaded {
			body.Detail = "first snapshot loaded; writing the binding files"
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, status, body)
}

// ready reports whether snap is loaded and projected to the binding files.
func (s *Sidecar) ready(snap *snapshot) bool {
	return snap.loaded && (s.files == nil || s.files.firstDone())
}

// awaitReady returns once the sidecar is ready, d has passed, the request
// is gone or the sidecar shuts down.
func (s *Sidecar) awaitReady(r *http.Request, d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond) // the files' first projection has no signal of its own
	defer tick.Stop()
	for {
		snap := s.cache.load()
		if s.ready(snap) {
			return
		}
		select {
		case <-snap.changed:
		case <-tick.C:
		case <-deadline.C:
			return
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		}
	}
}
