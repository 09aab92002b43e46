package ddi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The SDK reads what the sidecar answers: JSON bindings and snapshots,
// problem documents, and the /v1/watch event stream that keeps the cache
// of Start current. (It reads no binding files: functions that want files
// read $SERVICE_BINDING_ROOT themselves.) These fuzz targets feed it
// arbitrary answers: it never panics, every answer is a value or an error
// a caller can inspect, and the cache answers what the events said last.

// sseSeeds are event streams in the sidecar's format (internal/sidecar
// watch.go) and broken ones.
var sseSeeds = []string{
	"event: binding\nid: 1\ndata: {\"name\":\"greeter\",\"provider\":\"greeter-v1\",\"namespace\":\"default\",\"type\":\"http\",\"endpoints\":[{\"url\":\"http://127.0.0.1:9\",\"ready\":true}],\"selector\":\"greeter\",\"revision\":1}\n\n" +
		": keepalive\n\n" +
		"event: unbound\nid: 2\ndata: {\"name\":\"greeter\",\"selector\":\"greeter\",\"reason\":\"gone\"}\n\n",
	"event: binding\ndata: {\"name\":\"db\",\"type\":\"postgres\",\ndata: \"endpoints\":[{\"url\":\"postgres://u:p@db:5432/app\",\"ready\":true}],\"secret\":{\"password\":\"p\"},\"revision\":3}\n\n",
	"data: {\"name\":\"a\",\"revision\":1}\n\ndata: {\"name\":\"\"}\n\nevent: unbound\ndata: {}\n\nevent: other\ndata: {\"name\":\"x\"}\n\n",
	"event:binding\r\ndata:{\"name\":\"crlf\"}\r\n\r\n",
	"event: binding\ndata: not json\n\nevent: binding\ndata: {\"name\":\"b\",\"endpoints\":[{\"url\":\"::\",\"ready\":true}],\"config\":{\"host\":\"h]\",\"port\":\"x\"}}",
}

func FuzzWatchEvents(f *testing.F) {
	for _, s := range sseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		var events []Event
		err := readEvents(context.Background(), io.NopCloser(bytes.NewReader(stream)), func(ev Event) { events = append(events, ev) })
		if err == nil {
			t.Fatal("readEvents = nil, want io.EOF or the read error")
		}
		// Every event needs a data line.
		if data := bytes.Count(stream, []byte("data")); len(events) > data {
			t.Fatalf("%d events from a stream with %d data lines", len(events), data)
		}
		// Apply them as Start's cache does, after an empty snapshot.
		var c Client
		c.replaceState(Snapshot{})
		last := map[string]Event{}
		for _, ev := range events {
			switch {
			case ev.Name == "":
				t.Fatalf("event %+v has no name", ev)
			case ev.Kind == EventBinding && ev.Binding.Name != ev.Name:
				t.Fatalf("binding event %q carries binding %q", ev.Name, ev.Binding.Name)
			case ev.Kind == EventUnbound && ev.Unresolved.Name != ev.Name:
				t.Fatalf("unbound event %q carries %q", ev.Name, ev.Unresolved.Name)
			case ev.Kind != EventBinding && ev.Kind != EventUnbound:
				t.Fatalf("event of kind %q", ev.Kind)
			}
			c.applyEvent(ev)
			last[ev.Name] = ev
			checkBinding(t, ev.Binding)
		}
		for name, ev := range last {
			b, err := c.Resolve(context.Background(), name)
			switch ev.Kind {
			case EventBinding:
				if err != nil || b.Name != name || b.Revision != ev.Binding.Revision {
					t.Fatalf("Resolve(%q) = %+v, %v; want the last binding event's binding", name, b, err)
				}
			case EventUnbound:
				if !IsUnresolved(err) {
					t.Fatalf("Resolve(%q) = %+v, %v; want an unresolved problem after an unbound event", name, b, err)
				}
			}
		}
	})
}

// checkBinding checks the helpers of a binding the SDK decoded.
func checkBinding(t *testing.T, b Binding) {
	t.Helper()
	ready := b.ReadyEndpoints()
	if e := b.Endpoint(); (len(ready) == 0 && e != "") || (len(ready) > 0 && e != ready[0]) {
		t.Fatalf("Endpoint() = %q, ReadyEndpoints() = %q", e, ready)
	}
	u, err := b.URL()
	switch {
	case len(ready) == 0 && !errors.Is(err, ErrNoEndpoint):
		t.Fatalf("URL() of a binding without a ready endpoint = %v, want ErrNoEndpoint", err)
	case err == nil && u.Hostname() != "" && u.Port() != "":
		if got, want := b.Addr(), net.JoinHostPort(u.Hostname(), u.Port()); got != want {
			t.Fatalf("Addr() = %q for endpoint %q, want %q", got, b.Endpoint(), want)
		}
		if h, p, err := net.SplitHostPort(b.Addr()); err != nil || h != b.Host() || p != b.Port() {
			t.Fatalf("Addr() = %q splits into %q, %q, %v; want Host() %q and Port() %q", b.Addr(), h, p, err, b.Host(), b.Port())
		}
	}
	for k, v := range b.Secret {
		if b.Value(k) != v {
			t.Fatalf("Value(%q) = %q, want the secret's %q", k, b.Value(k), v)
		}
	}
	_ = b.Host()
	_ = b.Port()
}

// answer is a RoundTripper that answers every request with one response.
type answer struct {
	status      int
	contentType string
	body        []byte
}

func (a answer) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{}
	if a.contentType != "" {
		h.Set("Content-Type", a.contentType)
	}
	return &http.Response{StatusCode: a.status, Status: strconv.Itoa(a.status) + " " + http.StatusText(a.status), Header: h,
		Body: io.NopCloser(bytes.NewReader(a.body)), Request: r, ProtoMajor: 1, ProtoMinor: 1}, nil
}

func FuzzSidecarAnswers(f *testing.F) {
	snapshot := `{"bindings":[{"name":"db","provider":"pg","namespace":"team","type":"postgresql","version":"15.2.0","endpoints":[{"url":"postgres://pg.team:5432/app","ready":true}],"config":{"sslmode":"disable"},"secret":{"username":"app","password":"s3cr3t"},"selector":"postgresql@^15","revision":1}],"unresolved":[{"name":"greeter","selector":"greeter","reason":"no provider named greeter"}],"version":7}`
	for _, seed := range []struct {
		status int
		ct     string
		body   string
	}{
		{200, "application/json", snapshot},
		{200, "application/json", `{"name":"db","provider":"pg","type":"postgresql","endpoints":[{"url":"postgres://[::1]:5432/app","ready":true}],"revision":2}`},
		{404, "application/problem+json", `{"type":"https://ddi.dev/problems/unresolved","title":"Dependency unresolved","status":404,"detail":"dependency \"db\" is unresolved","dependency":"db","selector":"postgresql@^15"}`},
		{404, "application/problem+json", `{"type":"https://ddi.dev/problems/unknown-dependency","title":"Unknown dependency","status":404}`},
		{503, "application/problem+json", `{"type":"https://ddi.dev/problems/not-ready","status":503,"detail":"no snapshot yet"}`},
		{502, "text/plain", "bad gateway\n"},
		{500, "", ""},
		{200, "application/json", `{"bindings":null,"version":"7"}`},
		{204, "", ""},
		{200, "application/json", `[`},
	} {
		f.Add(uint16(seed.status), seed.ct, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status uint16, contentType string, body []byte) {
		code := 200 + int(status)%400 // 200-599
		c := &Client{Addr: "http://127.0.0.1:7471", HTTPClient: &http.Client{Transport: answer{code, contentType, body}}}
		ctx := context.Background()

		snap, err := c.Bindings(ctx)
		checkAnswer(t, "Bindings", code, body, err)
		if err == nil {
			for _, b := range snap.Bindings {
				checkBinding(t, b)
			}
			// Start's cache holds the snapshot.
			c.replaceState(snap)
			for _, b := range snap.Bindings {
				if got, err := c.Resolve(ctx, b.Name); err != nil || got.Name != b.Name {
					t.Fatalf("cached Resolve(%q) = %+v, %v", b.Name, got, err)
				}
			}
		}

		var fresh Client
		fresh.Addr, fresh.HTTPClient = c.Addr, c.HTTPClient
		b, err := fresh.Resolve(ctx, "db")
		checkAnswer(t, "Resolve", code, body, err)
		if err == nil {
			checkBinding(t, b)
		}
	})
}

// checkAnswer checks the error of a call the sidecar answered with code
// and body: none for a 2xx JSON body, a decode error for another 2xx, a
// *Problem with a status and a message otherwise.
func checkAnswer(t *testing.T, call string, code int, body []byte, err error) {
	t.Helper()
	var p *Problem
	switch {
	case code/100 == 2:
		if err != nil && (errors.As(err, &p) || !strings.Contains(err.Error(), "decode answer")) {
			t.Fatalf("%s of a %d answer = %v, want nil or a decode error", call, code, err)
		}
		if err == nil && !json.Valid(firstValue(body)) {
			t.Fatalf("%s accepted the body %q, which holds no JSON value", call, body)
		}
	case !errors.As(err, &p):
		t.Fatalf("%s of a %d answer = %v (%T), want a *Problem", call, code, err, err)
	case p.Status == 0 || p.Error() == "":
		t.Fatalf("%s of a %d answer = %+v, want a status and a message", call, code, p)
	case IsUnresolved(err) != (p.Kind() == KindUnresolved || p.Kind() == KindUnknownDependency):
		t.Fatalf("IsUnresolved(%+v) = %t", p, IsUnresolved(err))
	}
}

// firstValue returns the first JSON value of body (json.Decoder reads
// one and ignores the rest).
func firstValue(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw json.RawMessage
	if dec.Decode(&raw) != nil {
		return nil
	}
	return raw
}
