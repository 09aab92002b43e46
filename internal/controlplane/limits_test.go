package controlplane_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// onePod is an Authenticator for which every caller is the same pod, as
// every sidecar id sent with one pod's token is on Kubernetes.
type onePod struct{ controlplane.Trusting }

func (onePod) Identify(ctx context.Context, r *http.Request, h *protocol.Hello) (controlplane.Identity, error) {
	id, err := controlplane.Trusting{}.Identify(ctx, r, h)
	id.Owner = "pod:shop/orders-1"
	return id, err
}

// TestStreamsPerOwnerBounded: one owner opening more streams than
// MaxStreamsPerOwner keeps only its newest ones; the oldest end.
func TestStreamsPerOwnerBounded(t *testing.T) {
	// The httptest server closes after the streams (cleanups run last-in
	// first-out; openStream registers its own later).
	e := newEnvWith(t, func(o *controlplane.Options) { o.Auth = onePod{} })
	srv := e.srv

	var streams []*stream
	for i := range controlplane.MaxStreamsPerOwner + 2 {
		s := openStream(t, e, protocol.Hello{SidecarID: "sc-" + string(rune('a'+i)), Consumer: registry.Consumer{Name: "orders"}})
		s.next(t) // the first snapshot
		streams = append(streams, s)
	}
	ended := func(s *stream) bool {
		select {
		case _, ok := <-s.msgs:
			return !ok
		case <-time.After(500 * time.Millisecond):
			return false
		}
	}
	for i, s := range streams {
		want := i < 2
		if got := ended(s); got != want {
			t.Errorf("stream %d of %d ended = %v, want %v (the oldest beyond %d end)", i+1, len(streams), got, want, controlplane.MaxStreamsPerOwner)
		}
	}
	if n := len(srv.Sidecars()); n != controlplane.MaxStreamsPerOwner {
		t.Errorf("open streams = %d, want %d", n, controlplane.MaxStreamsPerOwner)
	}
}
