package sidecar

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	Event, ID, Data string
}

// readEvents parses n events from r (skipping comments).
func readEvents(t *testing.T, r *bufio.Reader, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read event stream after %d events: %v", len(out), err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if cur != (sseEvent{}) {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			cur.Data = strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

func TestWatch(t *testing.T) {
	f := newFakeCP(t)
	g := greeterBinding("http://127.0.0.1:9")
	g.Revision = 3
	ts := startConnected(t, f, testConfig(f), []registry.Binding{g},
		[]registry.Unresolved{{Name: "db", Selector: "postgresql@^15", Reason: "no provider has type postgresql"}})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url+"/v1/watch", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Fatalf("Content-Type = %q, want text/event-stream", got)
	}
	r := bufio.NewReader(resp.Body)

	gJSON := string(ts.cache.load().bindings["greeter"].body)
	want := []sseEvent{
		{Event: "binding", ID: "3", Data: strings.TrimSuffix(gJSON, "\n")},
		{Event: "unbound", ID: "0", Data: `{"name":"db","selector":"postgresql@^15","reason":"no provider has type postgresql"}`},
	}
	if diff := cmp.Diff(want, readEvents(t, r, 2)); diff != "" {
		t.Errorf("events on connect (-want +got):\n%s", diff)
	}

	// The greeter changes and the db appears: two binding events.
	g2 := greeterBinding("http://127.0.0.1:10")
	g2.Revision = 4
	f.push(t, 2, []registry.Binding{dbBinding(), g2}, nil)
	got := readEvents(t, r, 2)
	if got[0].Event != "binding" || !strings.Contains(got[0].Data, `"name":"db"`) ||
		got[1].Event != "binding" || got[1].ID != "4" || !strings.Contains(got[1].Data, "127.0.0.1:10") {
		t.Errorf("events after change = %+v, want binding events for db, then greeter revision 4", got)
	}

	// The greeter goes away: an unbound event with a higher id.
	f.push(t, 3, []registry.Binding{dbBinding()}, []registry.Unresolved{{Name: "greeter", Selector: "greeter", Reason: "no provider named greeter in namespace team"}})
	got = readEvents(t, r, 1)
	wantGone := sseEvent{Event: "unbound", ID: "5", Data: `{"name":"greeter","selector":"greeter","reason":"no provider named greeter in namespace team"}`}
	if diff := cmp.Diff(wantGone, got[0]); diff != "" {
		t.Errorf("event after removal (-want +got):\n%s", diff)
	}
}

func TestWatchKeepalive(t *testing.T) {
	old := keepaliveInterval
	keepaliveInterval = 20 * time.Millisecond
	t.Cleanup(func() { keepaliveInterval = old })
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), nil, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url+"/v1/watch", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != ": keepalive\n" {
		t.Errorf("first line = %q, %v, want \": keepalive\"", line, err)
	}
}
