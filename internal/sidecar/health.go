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

// handleReadyz answers 200 once the first snapshot is loaded and projected
// to the binding files, whether or not the control plane is reachable now;
// it never waits for the function.
func (s *Sidecar) handleReadyz(w http.ResponseWriter, r *http.Request) {
	snap := s.cache.load()
	connected, since, lastErr := s.stream.status()
	ready := snap.loaded && (s.files == nil || s.files.firstDone())
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
