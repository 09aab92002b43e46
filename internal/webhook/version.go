package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/version"
)

// NativeSidecarMinor is the first Kubernetes 1.x minor release with native
// sidecars (init containers with restartPolicy Always) enabled by default.
const NativeSidecarMinor = 29

// VersionGetter reports the API server's version; client-go's discovery
// client satisfies it.
type VersionGetter interface {
	ServerVersion() (*version.Info, error)
}

// ServerVersion caches whether the API server supports native sidecars. It
// asks discovery at most once per TTL; when discovery fails it keeps the
// last answer (or, before the first one, answers false: a plain container
// works everywhere).
type ServerVersion struct {
	Discovery VersionGetter
	// TTL is how long an answer is kept. Default 10 minutes.
	TTL    time.Duration
	Logger *slog.Logger

	mu      sync.Mutex
	native  bool
	known   bool
	checked time.Time
}

// Native reports whether the cluster runs native sidecars. It is meant for
// Options.Native.
func (v *ServerVersion) Native(context.Context) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	ttl := v.TTL
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	if v.known && time.Since(v.checked) < ttl {
		return v.native
	}
	v.checked = time.Now()
	info, err := v.Discovery.ServerVersion()
	if err == nil {
		var native bool
		native, err = SupportsNativeSidecars(info)
		if err == nil {
			v.native, v.known = native, true
			return native
		}
	}
	if v.Logger != nil {
		v.Logger.Warn("cannot tell whether the API server supports native sidecars; keeping the last answer", "native", v.native, "err", err)
	}
	return v.native
}

// SupportsNativeSidecars reports whether a server of this version enables
// native sidecars by default (Kubernetes 1.29 and later).
func SupportsNativeSidecars(info *version.Info) (bool, error) {
	major, err := strconv.Atoi(strings.TrimRight(info.Major, "+"))
	if err != nil {
		return false, fmt.Errorf("server version major %q: %w", info.Major, err)
	}
	minor, err := strconv.Atoi(strings.TrimRight(info.Minor, "+"))
	if err != nil {
		return false, fmt.Errorf("server version minor %q: %w", info.Minor, err)
	}
	return major > 1 || (major == 1 && minor >= NativeSidecarMinor), nil
}
