package controlplane_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/bolt"
)

type env struct {
	store registry.Store
	srv   *controlplane.Server
	http  *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith runs a control plane on a fresh bbolt store, with its
// options adjusted by opts (which may wrap the store), served by an
// httptest server; everything stops when the test ends, after the
// streams the test opened.
func newEnvWith(t testing.TB, opts func(*controlplane.Options)) *env {
	t.Helper()
	store, srv := startServer(t, opts)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{store: store, srv: srv, http: hs}
}

// startServer runs a control plane on a fresh bbolt store until the test
// ends, ready (its first listing indexed) when it returns.
func startServer(t testing.TB, opts func(*controlplane.Options)) (registry.Store, *controlplane.Server) {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "registry.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := controlplane.Options{Store: store, Heartbeat: time.Hour}
	if opts != nil {
		opts(&o)
	}
	srv, err := controlplane.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	<-srv.Ready()
	t.Cleanup(func() {
		cancel()
		<-done
		store.Close()
	})
	return store, srv
}

func (e *env) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const goodProvider = `{"type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"secret":{"password":"hunter2"}}`

func TestPutProviderBadInput(t *testing.T) {
	e := newEnv(t)
	if code, body := e.do(t, "PUT", "/v1/providers/default/keep", goodProvider); code != http.StatusCreated {
		t.Fatalf("PUT keep = %d %s, want 201", code, body)
	}
	before, beforeRev, _ := e.store.List(t.Context())
	tests := []struct {
		name      string
		path      string
		body      string
		wantCode  int
		wantField string
	}{
		{name: "malformed json", path: "/v1/providers/default/a", body: `{"type":`, wantCode: 400},
		{name: "not json", path: "/v1/providers/default/a", body: `hello`, wantCode: 400},
		{name: "unknown field", path: "/v1/providers/default/a", body: `{"type":"http","colour":"red"}`, wantCode: 400, wantField: "colour"},
		{name: "name not dns label", path: "/v1/providers/default/Bad_Name", body: goodProvider, wantCode: 400, wantField: "name"},
		{name: "namespace not dns label", path: "/v1/providers/NS!/a", body: goodProvider, wantCode: 400, wantField: "namespace"},
		{name: "missing type", path: "/v1/providers/default/a", body: `{"version":"1.0.0"}`, wantCode: 400, wantField: "type"},
		{name: "invalid version", path: "/v1/providers/default/a", body: `{"type":"http","version":"one"}`, wantCode: 400, wantField: "version"},
		{name: "negative ttl", path: "/v1/providers/default/a", body: `{"type":"http","lease":{"ttl":"-5s"}}`, wantCode: 400, wantField: "ttl"},
		{name: "huge ttl", path: "/v1/providers/default/a", body: `{"type":"http","lease":{"ttl":"100000h"}}`, wantCode: 400, wantField: "ttl"},
		{name: "config key traversal", path: "/v1/providers/default/a", body: `{"type":"http","config":{"../../etc/passwd":"x"}}`, wantCode: 400, wantField: "config key"},
		{name: "secret key with slash", path: "/v1/providers/default/a", body: `{"type":"http","secret":{"a/b":"x"}}`, wantCode: 400, wantField: "secret key"},
		{name: "relative endpoint", path: "/v1/providers/default/a", body: `{"type":"http","endpoints":[{"url":"localhost"}]}`, wantCode: 400, wantField: "endpoints[0].url"},
		{name: "body name differs", path: "/v1/providers/default/a", body: `{"name":"b","type":"http"}`, wantCode: 400, wantField: "name"},
		{name: "body over limit", path: "/v1/providers/default/a", body: `{"type":"http","config":{"k":"` + strings.Repeat("x", 2<<20) + `"}}`, wantCode: 413},
		{name: "stale revision", path: "/v1/providers/default/keep", body: `{"type":"http","revision":1000}`, wantCode: 409},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, "PUT", tc.path, tc.body)
			if code != tc.wantCode {
				t.Fatalf("PUT %s = %d %s, want %d", tc.path, code, body, tc.wantCode)
			}
			var p struct {
				Status int    `json:"status"`
				Field  string `json:"field"`
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal([]byte(body), &p); err != nil || p.Status != tc.wantCode || p.Detail == "" {
				t.Fatalf("body %q is not a problem document with status %d", body, tc.wantCode)
			}
			if p.Field != tc.wantField {
				t.Errorf("problem field = %q, want %q (detail %q)", p.Field, tc.wantField, p.Detail)
			}
			if strings.Contains(body, "hunter2") {
				t.Errorf("problem leaks a secret: %s", body)
			}
		})
	}
	after, afterRev, _ := e.store.List(t.Context())
	if afterRev != beforeRev || len(after) != len(before) {
		t.Errorf("store changed by bad input: revision %d -> %d, %d -> %d providers", beforeRev, afterRev, len(before), len(after))
	}
}

func TestProviderCRUDRedactsSecrets(t *testing.T) {
	e := newEnv(t)
	code, body := e.do(t, "PUT", "/v1/providers/default/db", `{"type":"postgres","version":"15.4.0","endpoints":[{"url":"postgres://127.0.0.1:5432/app","ready":true}],"secret":{"username":"app","password":"hunter2"}}`)
	if code != http.StatusCreated {
		t.Fatalf("create = %d %s", code, body)
	}
	if strings.Contains(body, "hunter2") || !strings.Contains(body, `"secretKeys":["password","username"]`) || !strings.Contains(body, `"type":"postgresql"`) {
		t.Errorf("create answer = %s, want canonical type, secret keys and no secret value", body)
	}
	for _, path := range []string{"/v1/providers", "/v1/providers/default/db"} {
		code, body := e.do(t, "GET", path, "")
		if code != 200 || strings.Contains(body, "hunter2") || !strings.Contains(body, "secretKeys") {
			t.Errorf("GET %s = %d %s, want 200 with secret keys and no secret value", path, code, body)
		}
	}
	if code, body := e.do(t, "PUT", "/v1/providers/default/db", `{"type":"postgresql","version":"15.5.0"}`); code != 200 {
		t.Errorf("replace = %d %s, want 200", code, body)
	}
	if code, body := e.do(t, "DELETE", "/v1/providers/default/db", ""); code != 204 {
		t.Errorf("delete = %d %s, want 204", code, body)
	}
	if code, _ := e.do(t, "GET", "/v1/providers/default/db", ""); code != 404 {
		t.Errorf("get after delete = %d, want 404", code)
	}
	if code, _ := e.do(t, "DELETE", "/v1/providers/default/db", ""); code != 404 {
		t.Errorf("delete twice = %d, want 404", code)
	}
}

func TestResolveEndpoint(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/providers/default/g1", `{"type":"http","version":"1.2.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"secret":{"token":"s3cret"}}`)
	e.do(t, "PUT", "/v1/providers/default/g2", `{"type":"http","version":"2.0.0","endpoints":[{"url":"http://127.0.0.1:9002","ready":true}]}`)
	waitRevision(t, e)
	code, body := e.do(t, "POST", "/v1/resolve", `{"consumer":{"name":"fn"},"dependency":"greeter=http@^1"}`)
	if code != 200 || !strings.Contains(body, `"provider":"g1"`) || strings.Contains(body, "s3cret") {
		t.Errorf("resolve ^1 = %d %s, want g1 without secret", code, body)
	}
	code, body = e.do(t, "POST", "/v1/resolve", `{"consumer":{"name":"fn"},"dependency":"db=postgresql@^15"}`)
	if code != 404 || !strings.Contains(body, `"dependency":"db"`) || !strings.Contains(body, `"selector":"postgresql@^15"`) {
		t.Errorf("resolve missing = %d %s, want 404 naming dependency and selector", code, body)
	}
	code, body = e.do(t, "POST", "/v1/resolve", `{"consumer":{"name":"fn"},"dependency":"db=postgresql@^^15"}`)
	if code != 400 || !strings.Contains(body, `"field":"dependency"`) {
		t.Errorf("resolve bad range = %d %s, want 400 on field dependency", code, body)
	}
}

// waitRevision waits until the server's index caught up with the store.
func waitRevision(t *testing.T, e *env) {
	t.Helper()
	_, rev, _ := e.store.List(t.Context())
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, body := e.do(t, "GET", "/readyz", "")
		var r struct{ Revision int64 }
		_ = json.Unmarshal([]byte(body), &r)
		if r.Revision >= rev {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("index did not reach revision %d", rev)
}

type stream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
	msgs chan protocol.Message
}

func openStream(t *testing.T, e *env, hello protocol.Hello) *stream {
	t.Helper()
	return openStreamCtx(t, t.Context(), e, hello)
}

// openStreamCtx opens a stream that ends with ctx (or the test).
func openStreamCtx(t *testing.T, ctx context.Context, e *env, hello protocol.Hello) *stream {
	t.Helper()
	b, _ := json.Marshal(hello)
	ctx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(ctx, "POST", e.http.URL+protocol.StreamPath, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream = %d %s", resp.StatusCode, b)
	}
	s := &stream{body: resp.Body, sc: bufio.NewScanner(resp.Body), msgs: make(chan protocol.Message, 16)}
	s.sc.Buffer(nil, 1<<20)
	go func() {
		defer close(s.msgs)
		for s.sc.Scan() {
			var m protocol.Message
			if json.Unmarshal(s.sc.Bytes(), &m) == nil {
				s.msgs <- m
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return s
}

func (s *stream) next(t *testing.T) protocol.Message {
	t.Helper()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			t.Fatal("stream ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no stream message within 5s")
	}
	return protocol.Message{}
}

func TestStreamSnapshotsAcksAndResume(t *testing.T) {
	e := newEnv(t)
	hello := protocol.Hello{SidecarID: "sc-1", Consumer: registry.Consumer{Name: "frontend"}, Dependencies: []string{"greeter=http@>=1", "db=db"}}
	s := openStream(t, e, hello)
	first := s.next(t)
	if first.Type != protocol.TypeSnapshot || len(first.Bindings) != 0 || len(first.Unresolved) != 2 {
		t.Fatalf("first message = %+v, want a snapshot with 2 unresolved dependencies", first)
	}
	e.do(t, "PUT", "/v1/providers/default/g1", `{"type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"secret":{"token":"t1"}}`)
	second := s.next(t)
	if second.Type != protocol.TypeSnapshot || len(second.Bindings) != 1 || second.Bindings[0].Provider != "g1" || second.Bindings[0].Secret["token"] != "t1" {
		t.Fatalf("after adding g1 = %+v, want greeter bound to g1 with its secret", second)
	}
	if second.Version <= first.Version || second.Bindings[0].Revision != second.Version {
		t.Errorf("versions %d -> %d, binding revision %d: want growth", first.Version, second.Version, second.Bindings[0].Revision)
	}
	// A provider change that does not concern this consumer sends nothing;
	// the next message is the one about g2.
	e.do(t, "PUT", "/v1/providers/default/other", `{"type":"redis","endpoints":[{"url":"redis://127.0.0.1:6379","ready":true}]}`)
	e.do(t, "PUT", "/v1/providers/default/g2", `{"type":"http","version":"2.0.0","endpoints":[{"url":"http://127.0.0.1:9002","ready":true}]}`)
	third := s.next(t)
	if len(third.Bindings) != 1 || third.Bindings[0].Provider != "g2" {
		t.Fatalf("after adding g2 = %+v, want greeter rebound to g2", third)
	}
	if first.Stream == "" {
		t.Fatalf("first message carries no stream token: %+v", first)
	}
	if code, body := e.do(t, "POST", protocol.AckPath, `{"sidecarID":"sc-1","stream":"forged","version":`+itoa(third.Version)+`,"hash":"`+third.Hash+`"}`); code != 404 || !strings.Contains(body, "unknown-stream") {
		t.Fatalf("ack with a forged stream token = %d %s, want 404 unknown-stream", code, body)
	}
	if code, body := e.do(t, "POST", protocol.AckPath, `{"sidecarID":"sc-1","stream":"`+first.Stream+`","version":`+itoa(third.Version)+`,"hash":"`+third.Hash+`"}`); code != 204 {
		t.Fatalf("ack = %d %s", code, body)
	}
	if code, body := e.do(t, "POST", protocol.AckPath, `{"sidecarID":"nobody","version":1,"hash":"x"}`); code != 404 {
		t.Errorf("ack of unknown sidecar = %d %s, want 404", code, body)
	}
	_, body := e.do(t, "GET", "/v1/sidecars", "")
	if !strings.Contains(body, `"ackedVersion":`+itoa(third.Version)) {
		t.Errorf("sidecars = %s, want acked version %d", body, third.Version)
	}

	// Resume with the acked version and hash: unchanged.
	hello.ResumeVersion, hello.ResumeHash = third.Version, third.Hash
	s2 := openStream(t, e, hello)
	if m := s2.next(t); m.Type != protocol.TypeUnchanged || m.Version != third.Version {
		t.Errorf("resume = %+v, want unchanged at version %d", m, third.Version)
	}
	// Resume after a change: a full snapshot with a higher version.
	e.do(t, "DELETE", "/v1/providers/default/g2", "")
	waitRevision(t, e) // the index must have seen the delete before the stream opens
	hello.SidecarID = "sc-2"
	s3 := openStream(t, e, hello)
	m := s3.next(t)
	if m.Type != protocol.TypeSnapshot || m.Version <= third.Version || len(m.Bindings) != 1 || m.Bindings[0].Provider != "g1" {
		t.Errorf("resume after change = %+v, want snapshot above %d bound to g1", m, third.Version)
	}
}

func TestStreamScopeKeepsSecretsAway(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/providers/default/db", `{"type":"postgresql","endpoints":[{"url":"postgres://127.0.0.1:5432/app","ready":true}],"secret":{"password":"hunter2"},"scope":{"workloads":["orders"]}}`)
	waitRevision(t, e)
	other := openStream(t, e, protocol.Hello{SidecarID: "x", Consumer: registry.Consumer{Name: "intruder"}, Dependencies: []string{"db=db", "any=postgresql@*"}})
	m := other.next(t)
	if len(m.Bindings) != 0 || len(m.Unresolved) != 2 {
		t.Fatalf("out-of-scope consumer got %+v, want no bindings", m)
	}
	b, _ := json.Marshal(m)
	if strings.Contains(string(b), "hunter2") {
		t.Fatalf("out-of-scope consumer received the secret: %s", b)
	}
	orders := openStream(t, e, protocol.Hello{SidecarID: "y", Consumer: registry.Consumer{Name: "orders"}, Dependencies: []string{"db=db"}})
	if m := orders.next(t); len(m.Bindings) != 1 || m.Bindings[0].Secret["password"] != "hunter2" {
		t.Fatalf("in-scope consumer got %+v, want the binding with its secret", m)
	}
}

func TestStreamBadHello(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, body, field string
	}{
		{name: "no sidecar id", body: `{"consumer":{"name":"fn"}}`, field: "sidecarID"},
		{name: "bad consumer name", body: `{"sidecarID":"a","consumer":{"name":"Fn!"}}`, field: "consumer.name"},
		{name: "bad dependency", body: `{"sidecarID":"a","consumer":{"name":"fn"},"dependencies":["db"]}`},
		{name: "duplicate alias", body: `{"sidecarID":"a","consumer":{"name":"fn"},"dependencies":["db=a","db=b"]}`},
		{name: "unknown field", body: `{"sidecarID":"a","consumer":{"name":"fn"},"deps":[]}`, field: "deps"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, "POST", protocol.StreamPath, tc.body)
			if code != 400 || !strings.Contains(body, `"field":"`+tc.field+`"`) && tc.field != "" {
				t.Errorf("stream %s = %d %s, want 400 naming %q", tc.body, code, body, tc.field)
			}
		})
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestUnknownRouteIsAProblem: a path no route matches gets a problem
// document, as every other answer of the API.
func TestUnknownRouteIsAProblem(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/v1/nothing", "/v1/providers/x/%2F/renew"} {
		resp, err := http.Get(e.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s = %d %s, want 404 application/problem+json", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}
