package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// The fuzz targets below drive the control plane's real Handler (the
// trusting authenticator of `ddi dev`, a bbolt store) with fuzzed request
// bodies: provider writes, renewals, resolutions, and a stream's hello and
// ack. Whatever the body, the answer is never a 5xx other than 503 (the
// store failed), and what a 2xx stores validates again.

// fuzzEnv is one control plane for a fuzz worker; inputs run one at a time.
type fuzzEnv struct {
	store   registry.Store
	srv     *controlplane.Server
	handler http.Handler
}

// fuzzProviders are in the store before any input runs.
var fuzzProviders = map[string]string{
	"default/g1":  `{"type":"http","version":"1.2.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"secret":{"token":"s3cret"},"scope":{"workloads":["orders"]}}`,
	"default/g2":  `{"type":"http","version":"2.0.0","endpoints":[{"url":"http://127.0.0.1:9002","ready":true},{"url":"http://127.0.0.1:9003"}],"labels":{"tier":"gold"}}`,
	"default/db":  `{"type":"postgres","version":"15.4.0","endpoints":[{"url":"postgres://app@127.0.0.1:5432/app","ready":true}],"config":{"sslmode":"disable"},"secret":{"username":"app","password":"hunter2"}}`,
	"team-b/pay":  `{"type":"http","version":"1.0.0","endpoints":[{"url":"https://pay.team-b:8443","ready":true}],"secret":{"key":"k3y"},"scope":{"namespaces":["*"]}}`,
	"default/reg": `{"type":"http","version":"1.0.0","lease":{"ttl":"1h"},"owner":"sidecar:default/fn@host"}`,
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	store, srv := startServer(f, nil)
	e := &fuzzEnv{store: store, srv: srv, handler: srv.Handler()}
	for key := range fuzzProviders {
		e.restore(f, key)
	}
	e.waitIndexed(f)
	return e
}

// restore writes the fixture provider key again, whoever holds it now.
func (e *fuzzEnv) restore(t testing.TB, key string) {
	t.Helper()
	ns, name, _ := strings.Cut(key, "/")
	if err := e.store.Delete(context.Background(), ns, name, 0); err != nil && !errors.Is(err, registry.ErrNotFound) {
		t.Fatal(err)
	}
	if code, body := e.do("PUT", "/v1/providers/"+key, []byte(fuzzProviders[key])); code/100 != 2 {
		t.Fatalf("PUT %s = %d %s", key, code, body)
	}
}

// waitIndexed waits until the server's index shows the store's revision.
func (e *fuzzEnv) waitIndexed(t testing.TB) {
	t.Helper()
	_, rev, err := e.store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		_, body := e.do("GET", "/readyz", nil)
		var r struct{ Revision int64 }
		if json.Unmarshal(body, &r) == nil && r.Revision >= rev {
			return
		}
	}
	t.Fatalf("the index did not reach revision %d", rev)
}

func (e *fuzzEnv) do(method, path string, body []byte) (int, []byte) {
	req := httptest.NewRequest(method, "http://127.0.0.1:7470"+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// checkStatus fails on a 5xx other than 503, and on a 4xx or 503 from a
// ddi handler that is no problem document.
func checkStatus(t *testing.T, what string, code int, body []byte) {
	t.Helper()
	if code >= 500 && code != http.StatusServiceUnavailable {
		t.Fatalf("%s = %d %s, want no 5xx but 503", what, code, body)
	}
	if (code == http.StatusNotFound && string(body) == "404 page not found\n") || (code == http.StatusMethodNotAllowed && string(body) == "Method Not Allowed\n") {
		return // the mux's own answer for a path no route matches (see docs/fuzzing.md)
	}
	if code >= 400 {
		var p struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Status != code || p.Detail == "" {
			t.Fatalf("%s = %d %s: not a problem document with status %d and a detail", what, code, body, code)
		}
	}
}

func FuzzPutProvider(f *testing.F) {
	e := newFuzzEnv(f)
	for _, body := range []string{
		goodProvider, `{"type":`, `hello`, `{"type":"http","colour":"red"}`, `{"version":"1.0.0"}`,
		`{"type":"http","version":"one"}`, `{"type":"http","lease":{"ttl":"-5s"}}`, `{"type":"http","lease":{"ttl":"100000h"}}`,
		`{"type":"http","lease":{"ttl":30},"owner":"pod:default/fn/1"}`, `{"type":"http","config":{"../../etc/passwd":"x"}}`,
		`{"type":"http","secret":{"a/b":"x"}}`, `{"type":"http","endpoints":[{"url":"localhost"}]}`, `{"name":"b","type":"http"}`,
		`{"type":"http","revision":1000}`, `{"type":"http","revision":-1}`, `{"namespace":"default","name":"a","type":"http","version":"v1.0.0+build.1"}`,
		`{"type":"postgres","version":"15.4.0","endpoints":[{"url":"postgres://127.0.0.1:5432/app","ready":true}],"secret":{"username":"app","password":"hunter2"}}`,
		`{"type":"http","scope":{"namespaces":["*"],"serviceAccounts":["sa"],"workloads":["w"],"workloadLabels":{"app":"shop"}}}`,
		`{"type":"http","secretRef":{"name":"db-creds","keys":["password"]},"labels":{"ddi.dev/pin":"api"},"owner":"x"}`,
		fuzzProviders["default/reg"],
	} {
		f.Add("default", "a", []byte(body))
	}
	f.Add("default", "g1", []byte(fuzzProviders["default/db"]))
	f.Add("NS!", "a", []byte(goodProvider))
	f.Add("default", "Bad_Name", []byte(goodProvider))
	f.Add("default", "../../x", []byte(goodProvider))
	f.Fuzz(func(t *testing.T, ns, name string, body []byte) {
		path := "/v1/providers/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
		code, out := e.do("PUT", path, body)
		checkStatus(t, "PUT "+path, code, out)
		if code/100 != 2 {
			return
		}
		key := registry.Key(ns, name)
		defer func() {
			if _, fixture := fuzzProviders[key]; fixture {
				e.restore(t, key)
			} else if dcode, dout := e.do("DELETE", path, nil); dcode != http.StatusNoContent {
				t.Fatalf("DELETE %s after a %d PUT = %d %s", path, code, dcode, dout)
			}
		}()
		var view protocol.ProviderView
		if err := json.Unmarshal(out, &view); err != nil {
			t.Fatalf("PUT %s = %d %s: %v", path, code, out, err)
		}
		if view.Secret != nil || view.Namespace != ns || view.Name != name {
			t.Fatalf("PUT %s answered %s: want %s/%s without secret values", path, out, ns, name)
		}
		stored, err := e.store.Get(t.Context(), ns, name)
		if err != nil {
			t.Fatalf("PUT %s = %d, but Get: %v", path, code, err)
		}
		if err := registry.ValidateProvider(&stored); err != nil {
			t.Fatalf("PUT %s stored a provider that does not validate: %v\nbody %s", path, err, body)
		}
		if stored.Revision != view.Revision {
			t.Fatalf("PUT %s answered revision %d, the store holds %d", path, view.Revision, stored.Revision)
		}
		if keys := slices.Sorted(maps.Keys(stored.Secret)); !slices.Equal(keys, view.SecretKeys) {
			t.Fatalf("PUT %s answered secret keys %q, the store holds %q", path, view.SecretKeys, keys)
		}
	})
}

func FuzzRenewProvider(f *testing.F) {
	e := newFuzzEnv(f)
	for _, body := range []string{`{"ttl":"30s"}`, `{"ttl":30}`, `{"ttl":0.5}`, `{"ttl":"-1s"}`, `{"ttl":"25h"}`, `{"ttl":1e300}`,
		`{"ttl":-1e300}`, `{"ttl":"soon"}`, `{"ttl":null}`, `{}`, `{"ttl":"30s","x":1}`, `[]`, ``} {
		f.Add("default", "reg", []byte(body))
	}
	f.Add("default", "g1", []byte(`{"ttl":"30s"}`))
	f.Add("default", "nobody", []byte(`{"ttl":"30s"}`))
	f.Fuzz(func(t *testing.T, ns, name string, body []byte) {
		path := "/v1/providers/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "/renew"
		code, out := e.do("POST", path, body)
		checkStatus(t, "POST "+path, code, out)
		if code/100 != 2 {
			return
		}
		var view protocol.ProviderView
		if err := json.Unmarshal(out, &view); err != nil {
			t.Fatalf("POST %s = %d %s: %v", path, code, out, err)
		}
		if view.Lease == nil || view.Secret != nil {
			t.Fatalf("POST %s answered %s: want a lease and no secret values", path, out)
		}
		ttl := time.Duration(view.Lease.TTL)
		if err := registry.ValidateTTL(ttl); err != nil {
			t.Fatalf("POST %s renewed with a TTL out of range: %v", path, err)
		}
		if left := time.Until(view.Lease.ExpiresAt); left > ttl || left < ttl-time.Minute {
			t.Fatalf("POST %s: lease expires in %s, want about its TTL %s", path, left, ttl)
		}
	})
}

func FuzzResolve(f *testing.F) {
	e := newFuzzEnv(f)
	for _, body := range []string{
		`{"consumer":{"name":"fn"},"dependency":"greeter=http@^1"}`,
		`{"consumer":{"name":"orders"},"dependency":"greeter=g1"}`,
		`{"consumer":{"name":"fn"},"dependency":"db=postgresql@^15"}`,
		`{"consumer":{"name":"fn"},"dependency":"db=postgresql@^^15"}`,
		`{"consumer":{"name":"fn","namespace":"team-a","labels":{"app":"shop"}},"dependency":"pay=*/http@*"}`,
		`{"consumer":{"name":"fn"},"dependency":"pay=team-b/pay"}`,
		`{"consumer":{"name":"fn"},"dependency":"g=http@*,tier=gold"}`,
		`{"consumer":{"name":"Fn!"},"dependency":"g=g1"}`,
		`{"consumer":{"name":"fn"},"dependency":"g=90%g1,10%http@^2"}`,
		`{"consumer":{"name":"fn"},"dependency":"g=50%nope,50%http@*,tier=gold"}`,
		`{"consumer":{"name":"fn"},"dependency":"g=90%g1,20%g2"}`,
		`{"consumer":{},"dependency":""}`, `{"dependency":"a=b","extra":1}`, `null`, `{}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, out := e.do("POST", "/v1/resolve", body)
		checkStatus(t, "POST /v1/resolve", code, out)
		// /v1/explain takes the same body and runs the same rules: it
		// must agree with /v1/resolve.
		ecode, eout := e.do("POST", "/v1/explain", body)
		checkStatus(t, "POST /v1/explain", ecode, eout)
		var ex controlplane.ExplainResponse
		switch {
		case code == http.StatusOK || code == http.StatusNotFound:
			if ecode != http.StatusOK {
				t.Fatalf("POST /v1/resolve = %d but POST /v1/explain = %d %s", code, ecode, eout)
			}
			if err := json.Unmarshal(eout, &ex); err != nil {
				t.Fatalf("POST /v1/explain = %s: %v", eout, err)
			}
			if (code == http.StatusNotFound) != (ex.Unresolved != "" && ex.Chosen == "") {
				t.Fatalf("POST /v1/resolve = %d %s, explain chose %q unresolved %q", code, out, ex.Chosen, ex.Unresolved)
			}
			if bytes.Contains(eout, []byte(`"secret"`)) {
				t.Fatalf("POST /v1/explain answered a secret: %s", eout)
			}
		case ecode != code:
			t.Fatalf("POST /v1/resolve = %d but POST /v1/explain = %d %s", code, ecode, eout)
		}
		if code/100 != 2 {
			return
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(out, &fields); err != nil {
			t.Fatalf("POST /v1/resolve = %d %s: %v", code, out, err)
		}
		if _, ok := fields["secret"]; ok {
			t.Fatalf("POST /v1/resolve answered a secret: %s", out)
		}
		var b registry.Binding
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatal(err)
		}
		var req controlplane.ResolveRequest
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("a 2xx resolve of a body that does not decode: %s", body)
		}
		dep, err := registry.ParseDependency(req.Dependency)
		if err != nil {
			t.Fatalf("a 2xx resolve of the dependency %q, which does not parse: %v", req.Dependency, err)
		}
		if ex.Chosen != registry.Key(b.Namespace, b.Provider) {
			t.Fatalf("POST /v1/resolve bound %s/%s, POST /v1/explain chose %q", b.Namespace, b.Provider, ex.Chosen)
		}
		if b.Name != dep.Alias || b.Selector != dep.SelectorString() {
			t.Fatalf("POST /v1/resolve %q answered binding %q for selector %q", req.Dependency, b.Name, b.Selector)
		}
		if dep.IsSplit() {
			// A split: one entry per target, shares adding up to 100,
			// only resolved targets with a share, the primary bound.
			sum := 0
			for i, st := range b.Split {
				sum += st.Share
				if (st.Provider == "") != (st.Unresolved != "") || st.Provider == "" && st.Share != 0 {
					t.Fatalf("POST /v1/resolve %q: target %d = %+v", req.Dependency, i, st)
				}
				if st.Primary && (st.Provider != b.Provider || st.Namespace != b.Namespace) {
					t.Fatalf("POST /v1/resolve %q: primary %+v is not the binding's %s/%s", req.Dependency, st, b.Namespace, b.Provider)
				}
			}
			if len(b.Split) != len(dep.Split) || sum != 100 {
				t.Fatalf("POST /v1/resolve %q: split %+v, want %d targets with shares adding up to 100", req.Dependency, b.Split, len(dep.Split))
			}
		}
		p, err := e.store.Get(t.Context(), b.Namespace, b.Provider)
		if err != nil {
			t.Fatalf("POST /v1/resolve bound %s/%s, which is not stored: %v", b.Namespace, b.Provider, err)
		}
		if consumer := resolvedConsumer(req.Consumer); !registry.Admits(&p, consumer) {
			t.Fatalf("POST /v1/resolve bound %s to %s, whose scope does not admit it", registry.Key(consumer.Namespace, consumer.Name), p.Key())
		}
		for _, ep := range b.Endpoints {
			if !ep.Ready {
				t.Fatalf("POST /v1/resolve answered the endpoint %q, which is not ready", ep.URL)
			}
		}
	})
}

func resolvedConsumer(c registry.Consumer) registry.Consumer {
	if c.Namespace == "" {
		c.Namespace = registry.DefaultNamespace
	}
	return c
}

// streamWriter is a ResponseWriter for a stream handler that runs on its
// own goroutine: it signals each flush, so the test reads the first
// message while the stream stays open.
type streamWriter struct {
	mu      sync.Mutex
	header  http.Header
	code    int
	buf     bytes.Buffer
	flushed chan struct{}
}

func newStreamWriter() *streamWriter {
	return &streamWriter{header: http.Header{}, flushed: make(chan struct{}, 1)}
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.code == 0 {
		w.code = code
	}
}

func (w *streamWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.buf.Write(b)
}

func (w *streamWriter) Flush() {
	select {
	case w.flushed <- struct{}{}:
	default:
	}
}

func (w *streamWriter) result() (int, []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.code, slices.Clone(w.buf.Bytes())
}

func FuzzStream(f *testing.F) {
	e := newFuzzEnv(f)
	ack := []byte(`{"sidecarID":"$ID","stream":"$TOKEN","version":7,"hash":"abc"}`)
	for _, hello := range []string{
		`{"sidecarID":"frontend-7f9c2d","consumer":{"namespace":"default","name":"frontend","serviceAccount":"","labels":{}},"dependencies":["greeter=http@^1","db=postgresql@>=15,tier=gold"],"resumeVersion":41,"resumeHash":"9d3c6c5e0a1b4f7a8e2d1c0b9a8f7e6d"}`,
		`{"sidecarID":"sc-1","consumer":{"name":"frontend"},"dependencies":["greeter=http@>=1","db=db"]}`,
		`{"sidecarID":"y","consumer":{"name":"orders"},"dependencies":["g=g1","any=postgresql@*","pay=*/http@*","p2=team-b/pay"]}`,
		`{"sidecarID":"x","consumer":{"name":"intruder","namespace":"team-a"},"dependencies":["db=default/db","pay=*/http@^1,tier=gold"]}`,
		`{"consumer":{"name":"fn"}}`, `{"sidecarID":"a","consumer":{"name":"Fn!"}}`,
		`{"sidecarID":"a","consumer":{"name":"fn"},"dependencies":["db"]}`,
		`{"sidecarID":"a","consumer":{"name":"fn"},"dependencies":["db=a","db=b"]}`,
		`{"sidecarID":"a","consumer":{"name":"fn"},"deps":[]}`, `{"sidecarID":"\"\\u2028","consumer":{"name":"fn"}}`,
	} {
		f.Add([]byte(hello), ack)
	}
	f.Add([]byte(`{"sidecarID":"sc-1","consumer":{"name":"fn"},"dependencies":["g=g2"]}`), []byte(`{"sidecarID":"$ID","stream":"$TOKEN","version":1,"hash":"h","error":"disk full"}`))
	f.Add([]byte(`{"sidecarID":"sc-1","consumer":{"name":"fn"},"dependencies":["g=g2"]}`), []byte(`{"sidecarID":"other","stream":"$TOKEN","version":-3}`))
	f.Add([]byte(`{"sidecarID":"sc-1","consumer":{"name":"fn"},"dependencies":["g=g2"]}`), []byte(`{"sidecarID":"$ID","stream":"forged","version":1}`))
	f.Fuzz(func(t *testing.T, hello, ack []byte) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		w := newStreamWriter()
		req := httptest.NewRequest("POST", protocol.StreamPath, bytes.NewReader(hello)).WithContext(ctx)
		req.Header.Set("Content-Type", "application/json")
		done := make(chan struct{})
		go func() { defer close(done); e.handler.ServeHTTP(w, req) }()
		defer func() { cancel(); <-done }()

		select {
		case <-w.flushed:
		case <-done:
			code, out := w.result()
			if code == http.StatusOK {
				t.Fatalf("stream answered 200 without a message: %s", out)
			}
			checkStatus(t, "POST /v1/stream", code, out)
			return
		case <-time.After(10 * time.Second):
			t.Fatalf("stream sent nothing within 10s for hello %s", hello)
		}
		code, out := w.result()
		line, _, ok := bytes.Cut(out, []byte("\n"))
		if code != http.StatusOK || !ok {
			t.Fatalf("stream = %d %q, want 200 and a first line", code, out)
		}
		var h protocol.Hello
		if err := json.Unmarshal(hello, &h); err != nil {
			t.Fatalf("a stream opened by a hello that does not decode: %s", hello)
		}
		m := decodeStrict[protocol.Message](t, line)
		checkFirstMessage(t, e, h, m)

		// Acknowledge with the stream's token where the fuzzed ack asks.
		id, _ := json.Marshal(h.SidecarID)
		body := bytes.ReplaceAll(ack, []byte("$TOKEN"), []byte(m.Stream))
		body = bytes.ReplaceAll(body, []byte("$ID"), id[1:len(id)-1])
		code, out = e.do("POST", protocol.AckPath, body)
		checkStatus(t, "POST /v1/ack", code, out)
		if code != http.StatusNoContent {
			return
		}
		var a protocol.Ack
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("a 204 ack of a body that does not decode: %s", body)
		}
		if a.Stream != m.Stream || a.SidecarID != h.SidecarID {
			t.Fatalf("ack %s accepted for stream %q of sidecar %q", body, m.Stream, h.SidecarID)
		}
		var st *protocol.SidecarStatus
		for _, s := range e.srv.Sidecars() {
			if s.ID == h.SidecarID {
				st = &s
			}
		}
		switch {
		case st == nil:
			t.Fatalf("sidecar %q acknowledged but not listed", h.SidecarID)
		case a.Error != "" && st.AckError != a.Error:
			t.Fatalf("NACK %q recorded as %q", a.Error, st.AckError)
		case a.Error == "" && a.Version >= 0 && (st.AckedVersion != a.Version || st.AckedHash != a.Hash):
			t.Fatalf("ack of %d/%q recorded as %d/%q", a.Version, a.Hash, st.AckedVersion, st.AckedHash)
		case a.Error == "" && a.Version < 0 && st.AckedVersion != 0:
			t.Fatalf("ack of the negative version %d recorded as %d", a.Version, st.AckedVersion)
		}
	})
}

// checkFirstMessage checks the first message of a stream opened by h:
// every declared dependency is bound or unresolved, the hash is the
// content's, and secrets reach only consumers in the provider's scope.
func checkFirstMessage(t *testing.T, e *fuzzEnv, h protocol.Hello, m protocol.Message) {
	t.Helper()
	if m.Stream == "" {
		t.Fatalf("first message %+v carries no stream token", m)
	}
	if m.Type == protocol.TypeUnchanged {
		if h.ResumeHash == "" || m.Hash != h.ResumeHash || m.Version != h.ResumeVersion {
			t.Fatalf("unchanged %d/%q for a hello resuming %d/%q", m.Version, m.Hash, h.ResumeVersion, h.ResumeHash)
		}
		return
	}
	if m.Type != protocol.TypeSnapshot {
		t.Fatalf("first message is a %q, want a snapshot", m.Type)
	}
	deps, err := registry.ParseDependencyList(h.Dependencies)
	if err != nil {
		t.Fatalf("a stream opened with dependencies that do not parse: %v", err)
	}
	var names []string
	for _, b := range m.Bindings {
		names = append(names, b.Name)
	}
	for _, u := range m.Unresolved {
		names = append(names, u.Name)
	}
	var aliases []string
	for _, d := range deps {
		aliases = append(aliases, d.Alias)
	}
	slices.Sort(names)
	slices.Sort(aliases)
	if !slices.Equal(names, aliases) {
		t.Fatalf("snapshot names %q, want every declared dependency %q once", names, aliases)
	}
	if m.Hash != protocol.Hash(m.Bindings, m.Unresolved) {
		t.Fatalf("snapshot hash %q is not the hash of its content", m.Hash)
	}
	if m.Version <= 0 || m.Consumer == nil || m.Consumer.Name != h.Consumer.Name {
		t.Fatalf("snapshot version %d for consumer %+v, want a positive version for %q", m.Version, m.Consumer, h.Consumer.Name)
	}
	for _, b := range m.Bindings {
		if len(b.Secret) == 0 {
			continue
		}
		p, err := e.store.Get(context.Background(), b.Namespace, b.Provider)
		if err != nil {
			t.Fatalf("binding %q names %s/%s, which is not stored: %v", b.Name, b.Namespace, b.Provider, err)
		}
		if !registry.Admits(&p, *m.Consumer) {
			t.Fatalf("binding %q carries the secret of %s, whose scope does not admit %+v", b.Name, p.Key(), *m.Consumer)
		}
	}
}

// decodeStrict decodes b into a T, refusing unknown fields, or fails.
func decodeStrict[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, b, err)
	}
	return v
}
