package controlplane

import (
	"net/http"
	"runtime"
	"runtime/debug"

	"ddi.dev/ddi/internal/httpapi"
)

// Version is the ddi version of this binary, set at build time with
// -ldflags "-X ddi.dev/ddi/internal/controlplane.Version=v1.2.3". The
// control plane reports it at GET /v1/version, and `ddi version` prints it.
var Version = "v0.1.0-dev"

// BuildInfo is what GET /v1/version answers.
type BuildInfo struct {
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from, with
	// "-modified" when the tree had changes; "unknown" when the build
	// recorded none (go build -buildvcs=false).
	Commit string `json:"commit"`
	Go     string `json:"go"`
}

// Build returns the version, commit and Go version of this binary.
func Build() BuildInfo {
	b := BuildInfo{Version: Version, Commit: "unknown", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && b.Commit != "unknown" {
		b.Commit += "-modified"
	}
	return b
}

// handleVersion answers GET /v1/version to any caller the authenticator
// accepts (a pod's token on Kubernetes).
func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.caller(w, r); !ok {
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, Build())
}
