package watchhub_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/watchhub"
)

func event(rev int64) registry.Event {
	return registry.Event{
		Type:     registry.Put,
		Provider: registry.Provider{Namespace: "default", Name: "db", Labels: map[string]string{"tier": "primary"}, Revision: rev},
		Revision: rev,
	}
}

func newHub(buffer int) *watchhub.Hub {
	return watchhub.New(buffer, slog.New(slog.DiscardHandler))
}

// drain reads ch until it closes or stays quiet for a while, and returns
// the revisions read and whether it closed.
func drain(t *testing.T, ch <-chan registry.Event) (revs []int64, closed bool) {
	t.Helper()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return revs, true
			}
			revs = append(revs, ev.Revision)
		case <-time.After(100 * time.Millisecond):
			return revs, false
		}
	}
}

func TestAddReplaysThenPublishes(t *testing.T) {
	h := newHub(4)
	ch := h.Add(t.Context(), 1, []registry.Event{event(2), event(3)})
	for _, rev := range []int64{1, 4, 5} {
		h.Publish(event(rev))
	}
	revs, closed := drain(t, ch)
	if diff := cmp.Diff([]int64{2, 3, 4, 5}, revs); diff != "" || closed {
		t.Errorf("Add(from 1, replay 2 3) then Publish(1 4 5) = %v, closed %t; want [2 3 4 5], open (-want +got):\n%s", revs, closed, diff)
	}
}

func TestPublishFromRevision(t *testing.T) {
	h := newHub(4)
	ch := h.Add(t.Context(), 5, nil)
	for rev := range int64(8) {
		h.Publish(event(rev + 1))
	}
	revs, _ := drain(t, ch)
	if diff := cmp.Diff([]int64{6, 7, 8}, revs); diff != "" {
		t.Errorf("Add(from 5) revisions mismatch (-want +got):\n%s", diff)
	}
}

// TestSlowWatcher checks that a full buffer closes only its own channel,
// and that what it holds stays readable.
func TestSlowWatcher(t *testing.T) {
	h := newHub(2)
	slow := h.Add(t.Context(), 0, []registry.Event{event(1)})
	fast := h.Add(t.Context(), 0, nil)
	var fastRevs []int64
	for rev := int64(2); rev <= 5; rev++ {
		h.Publish(event(rev))
		fastRevs = append(fastRevs, (<-fast).Revision)
	}
	revs, closed := drain(t, slow)
	if diff := cmp.Diff([]int64{1, 2, 3}, revs); diff != "" || !closed {
		t.Errorf("slow watcher = %v, closed %t; want [1 2 3], closed (-want +got):\n%s", revs, closed, diff)
	}
	if diff := cmp.Diff([]int64{2, 3, 4, 5}, fastRevs); diff != "" {
		t.Errorf("reading watcher revisions mismatch (-want +got):\n%s", diff)
	}
}

func TestContextEnd(t *testing.T) {
	h := newHub(4)
	ctx, cancel := context.WithCancel(t.Context())
	ch := h.Add(ctx, 0, []registry.Event{event(1)})
	other := h.Add(t.Context(), 0, nil)
	cancel()
	revs, closed := drain(t, ch)
	if diff := cmp.Diff([]int64{1}, revs); diff != "" || !closed {
		t.Errorf("after cancel = %v, closed %t; want [1], closed", revs, closed)
	}
	h.Publish(event(2)) // must not send on the closed channel
	if revs, closed := drain(t, other); !cmp.Equal([]int64{2}, revs) || closed {
		t.Errorf("other watcher = %v, closed %t; want [2], open", revs, closed)
	}
}

func TestCloseAll(t *testing.T) {
	h := newHub(4)
	a := h.Add(t.Context(), 0, nil)
	b := h.Add(t.Context(), 0, nil)
	h.Publish(event(1))
	h.CloseAll()
	for name, ch := range map[string]<-chan registry.Event{"a": a, "b": b} {
		if revs, closed := drain(t, ch); !cmp.Equal([]int64{1}, revs) || !closed {
			t.Errorf("watcher %s after CloseAll = %v, closed %t; want [1], closed", name, revs, closed)
		}
	}
	c := h.Add(t.Context(), 1, nil)
	h.Publish(event(2))
	if revs, closed := drain(t, c); !cmp.Equal([]int64{2}, revs) || closed {
		t.Errorf("watcher added after CloseAll = %v, closed %t; want [2], open", revs, closed)
	}
}

// TestCopies checks that no watcher shares a map with the caller or with
// another watcher.
func TestCopies(t *testing.T) {
	h := newHub(4)
	replay := []registry.Event{event(1)}
	a := h.Add(t.Context(), 0, replay)
	b := h.Add(t.Context(), 1, nil)
	live := event(2)
	h.Publish(live)

	replay[0].Provider.Labels["tier"] = "mutated"
	live.Provider.Labels["tier"] = "mutated"
	replayedA, publishedA, publishedB := <-a, <-a, <-b
	publishedA.Provider.Labels["tier"] = "mutated"
	for what, ev := range map[string]registry.Event{"replayed to a": replayedA, "published to b": publishedB} {
		if got := ev.Provider.Labels["tier"]; got != "primary" {
			t.Errorf("%s: label tier = %q, want primary", what, got)
		}
	}
}
