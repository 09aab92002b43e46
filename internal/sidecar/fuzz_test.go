package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// The fuzz targets below feed the sidecar what reaches it from outside:
// a function's registration body (PUT /v1/providers/{name}, through the
// real handler to a real control plane), the control plane's snapshot
// stream (through the real stream reader, cache and binding-file
// projector), and hostile bindings for the binding-file writer. Whatever
// arrives, nothing is written outside the binding root, and what the
// sidecar accepts the control plane accepts too.

// localRequest builds a request the sidecar's API accepts from the
// function: a loopback Host and a JSON body.
func localRequest(method, path string, body []byte) *http.Request {
	req := httptest.NewRequest(method, "http://127.0.0.1:7471"+path, bytes.NewReader(body))
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func serve(h http.Handler, req *http.Request) (int, []byte) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// checkProblem fails on a 500 and on an error answer that is no problem
// document. allowed5xx are the 5xx the route documents.
func checkProblem(t *testing.T, what string, code int, body []byte, allowed5xx ...int) {
	t.Helper()
	if code >= 500 && !slices.Contains(allowed5xx, code) {
		t.Fatalf("%s = %d %s, want no 5xx but %v", what, code, body, allowed5xx)
	}
	if code >= 400 {
		var p httpapi.Problem
		if err := json.Unmarshal(body, &p); err != nil || p.Status != code || p.Detail == "" {
			t.Fatalf("%s = %d %s: not a problem document with status %d and a detail", what, code, body, code)
		}
	}
}

func FuzzRegister(f *testing.F) {
	cpURL, store := startRealControlPlane(f)
	ctx := context.Background()
	// A declared provider and another function's registration: both names
	// are refused.
	if _, err := store.Create(ctx, registry.Provider{Namespace: "team", Name: "declared", Type: "http"}); err != nil {
		f.Fatal(err)
	}
	if _, err := store.Create(ctx, registry.Provider{Namespace: "team", Name: "theirs", Type: "http", Owner: "sidecar:team/other@elsewhere",
		Lease: &registry.Lease{TTL: registry.Duration(time.Hour)}}); err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{ControlPlane: cpURL, SidecarID: "sc-fuzz", Consumer: registry.Consumer{Namespace: "team", Name: "fn"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.regs.close(context.Background()); s.proxy.close() })
	h := s.Handler()

	valid := `{"type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001"}],"ttl":"30s"}`
	for _, body := range []string{
		valid, `{"type":"http","version":"1.0.0","endpoints":[{"url":"http://127.0.0.1:9001"}],"labels":{"tier":"gold"},"config":{"k":"v"},"ttl":"30s"}`,
		`{"type":`, `hello`, ``, valid + valid, `{"type":"http","colour":"red"}`, `{"type":"http","namespace":"other"}`, `{"type":7}`,
		`{"endpoints":[{"url":"http://127.0.0.1:9001"}]}`, `{"type":"http","version":"one"}`, `{"type":"http","endpoints":[{"url":"not a url"}]}`,
		`{"type":"http","ttl":"-5s"}`, `{"type":"http","ttl":"0s"}`, `{"type":"http","ttl":"1000h"}`, `{"type":"http","ttl":"soon"}`, `{"type":"http","ttl":45.5}`,
		`{"type":"http","config":{"../x":"v"}}`, `{"type":"http","labels":{"tier":"gold!"}}`,
		`{"type":"postgres","endpoints":[{"url":"postgres://db:5432/app","ready":false}],"secret":{"username":"app","password":"hunter2"}}`,
		`{"type":"http","scope":{"namespaces":["team"],"workloads":["fn"],"workloadLabels":{"app":"shop"}}}`,
		`{"type":"http","scope":{"namespaces":["*"]}}`, `{"type":"http","labels":{"ddi.dev/pin":"api"}}`,
	} {
		f.Add("worker", []byte(body))
	}
	for _, name := range []string{"Worker_1", strings.Repeat("w", 64), "declared", "theirs", "..", "a%2Fb"} {
		f.Add(name, []byte(valid))
	}
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		path := "/v1/providers/" + url.PathEscape(name)
		code, out := serve(h, localRequest("PUT", path, body))
		checkProblem(t, "PUT "+path, code, out, http.StatusBadGateway, http.StatusServiceUnavailable)
		if code == http.StatusBadRequest {
			if p := problemOfBytes(out); strings.HasPrefix(p.Detail, "control plane refused") {
				t.Fatalf("PUT %s: the sidecar forwarded a registration the control plane refuses (docs/api.md: everything is validated before anything reaches the control plane): %s\nbody %s", path, p.Detail, body)
			}
		}
		if code/100 != 2 {
			return
		}
		var view protocol.ProviderView
		if err := json.Unmarshal(out, &view); err != nil {
			t.Fatalf("PUT %s = %d %s: %v", path, code, out, err)
		}
		if view.Secret != nil {
			t.Fatalf("PUT %s echoed secret values: %s", path, out)
		}
		stored, err := store.Get(t.Context(), "team", name)
		if err != nil {
			t.Fatalf("PUT %s = %d, but the control plane's store has no team/%s: %v", path, code, name, err)
		}
		if err := registry.ValidateProvider(&stored); err != nil {
			t.Fatalf("PUT %s stored a provider that does not validate: %v\nbody %s", path, err, body)
		}
		if err := registry.ValidateRegistration(&stored); err != nil {
			t.Fatalf("PUT %s stored a registration that does not validate: %v\nbody %s", path, err, body)
		}
		if stored.Lease == nil || stored.Owner != s.regs.owner {
			t.Fatalf("PUT %s stored lease %+v, owner %q: want a lease and the owner %q", path, stored.Lease, stored.Owner, s.regs.owner)
		}
		if code, out := serve(h, localRequest("DELETE", path, nil)); code != http.StatusNoContent {
			t.Fatalf("DELETE %s after a successful PUT = %d %s", path, code, out)
		}
		if _, err := store.Get(t.Context(), "team", name); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("DELETE %s left team/%s in the store: %v", path, name, err)
		}
	})
}

func problemOfBytes(b []byte) httpapi.Problem {
	var p httpapi.Problem
	_ = json.Unmarshal(b, &p)
	return p
}

// fuzzStreamCP is a control plane whose stream answers with fixed bytes
// and whose ack endpoint records acks.
type fuzzStreamCP struct {
	srv *httptest.Server

	mu     sync.Mutex
	stream []byte
	acks   []protocol.Ack
}

func newFuzzStreamCP(f *testing.F) *fuzzStreamCP {
	cp := &fuzzStreamCP{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/stream", func(w http.ResponseWriter, r *http.Request) {
		var h protocol.Hello
		if p := httpapi.DecodeJSON(w, r, &h); p != nil {
			httpapi.WriteProblem(w, p)
			return
		}
		cp.mu.Lock()
		body := cp.stream
		cp.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("POST /v1/ack", func(w http.ResponseWriter, r *http.Request) {
		var a protocol.Ack
		if p := httpapi.DecodeJSON(w, r, &a); p != nil {
			httpapi.WriteProblem(w, p)
			return
		}
		cp.mu.Lock()
		cp.acks = append(cp.acks, a)
		cp.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	cp.srv = httptest.NewServer(mux)
	f.Cleanup(cp.srv.Close)
	return cp
}

// streamSeeds are stream bodies: real snapshots and hostile ones.
func streamSeeds() []string {
	line := func(m protocol.Message) string {
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		return string(b) + "\n"
	}
	db, g := dbBinding(), greeterBinding("http://127.0.0.1:9", "http://127.0.0.1:10")
	g2 := g
	g2.Config = map[string]string{"greeting": "hi"}
	hostile := []registry.Binding{
		{Name: "../escape", Type: "http", Provider: "x"},
		{Name: "ok", Type: "http", Config: map[string]string{"../../etc/passwd": "x", "..data": "y"}},
		{Name: "ok2", Type: "redis", Endpoints: []registry.Endpoint{{URL: "redis://:pw@10.0.0.1/0", Ready: true}}, Secret: map[string]string{"a/b": "x"}},
		{Name: "dup", Type: "http"}, {Name: "dup", Type: "grpc"},
	}
	return []string{
		line(protocol.Message{Type: protocol.TypeSnapshot, Stream: "tok", Version: 7, Hash: protocol.Hash([]registry.Binding{g}, nil), Bindings: []registry.Binding{g}}),
		line(protocol.Message{Type: protocol.TypeSnapshot, Stream: "tok", Version: 1, Bindings: []registry.Binding{db, g}}) +
			line(protocol.Message{Type: protocol.TypeHeartbeat}) +
			line(protocol.Message{Type: protocol.TypeSnapshot, Version: 2, Bindings: []registry.Binding{g2}, Unresolved: []registry.Unresolved{{Name: "db", Selector: "postgresql@^15", Reason: "gone"}}}) +
			line(protocol.Message{Type: protocol.TypeUnchanged, Version: 2, Hash: "h"}),
		line(protocol.Message{Type: protocol.TypeSnapshot, Stream: "tok", Version: 3, Bindings: hostile}),
		line(protocol.Message{Type: protocol.TypeSnapshot, Version: 5, Bindings: []registry.Binding{db}}) +
			line(protocol.Message{Type: protocol.TypeSnapshot, Version: 4, Bindings: []registry.Binding{db, g}, Unresolved: []registry.Unresolved{{Name: "greeter"}}}),
		line(protocol.Message{Type: protocol.TypeError, Error: "dependency \"x\" is bad"}) + line(protocol.Message{Type: protocol.TypeSnapshot, Version: 9}),
		`{"type":"snapshot","version":1,"bindings":[{"name":"a","endpoints":null}]}` + "\n" + `{"type":`,
		`{"type":"future"}{"type":"snapshot","version":-1}`,
	}
}

func FuzzStreamMessages(f *testing.F) {
	cp := newFuzzStreamCP(f)
	for _, s := range streamSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		cp.mu.Lock()
		cp.stream, cp.acks = stream, nil
		cp.mu.Unlock()

		parent := t.TempDir()
		root := filepath.Join(parent, "bindings")
		s, err := New(Config{ControlPlane: cp.srv.URL, SidecarID: "sc-fuzz", Consumer: registry.Consumer{Namespace: "team", Name: "fn"},
			BindingRoot: root, HeartbeatTimeout: 10 * time.Second}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer s.proxy.close()
		defer s.stream.client.HTTP.CloseIdleConnections()
		// Revisions never go back, and change exactly when the content does.
		prev := s.cache.load()
		apply := s.stream.onApply
		s.stream.onApply = func(snap *snapshot) {
			checkRevisions(t, prev, snap)
			prev = snap
			apply(snap)
		}
		ctx, cancel := context.WithCancel(t.Context())
		projected := make(chan struct{})
		go func() { defer close(projected); s.files.run(ctx) }()
		_, sessErr := s.stream.session(ctx)
		cancel()
		<-projected
		if sessErr == nil {
			t.Fatal("session() = nil, want the reason the stream ended")
		}

		checkAcks(t, stream, cp)
		snap := s.cache.load()
		checkAPI(t, s, snap)

		// The projector, run once more on the final state, leaves a root
		// holding exactly the valid bindings, and nothing beside it.
		_ = s.files.sync(snap)
		checkTree(t, parent, root, nil)
		entries, _ := os.ReadDir(root)
		for _, de := range entries {
			e := snap.bindings[de.Name()]
			if e == nil {
				t.Fatalf("binding root holds %q, which is not bound", de.Name())
			}
			typ, err := os.ReadFile(filepath.Join(root, de.Name(), "type"))
			if err != nil || string(typ) != e.binding.Type {
				t.Fatalf("%s/type = %q, %v; want %q", de.Name(), typ, err, e.binding.Type)
			}
		}
		for _, name := range snap.names {
			if _, err := bindingFiles(&snap.bindings[name].binding); err == nil && registry.ValidateName("name", name) == nil {
				if _, err := os.Stat(filepath.Join(root, name, markerFile)); err != nil {
					t.Fatalf("the valid binding %q has no directory: %v", name, err)
				}
			}
		}
	})
}

// checkRevisions compares a newly applied snapshot with the one before.
func checkRevisions(t *testing.T, old, cur *snapshot) {
	t.Helper()
	if !slices.IsSorted(cur.names) || len(slices.Compact(slices.Clone(cur.names))) != len(cur.names) || len(cur.names) != len(cur.bindings) {
		t.Fatalf("snapshot names %q are not the sorted, unique names of its %d bindings", cur.names, len(cur.bindings))
	}
	for name, e := range cur.bindings {
		if e.binding.Name != name {
			t.Fatalf("binding %q filed under %q", e.binding.Name, name)
		}
		was, ok := old.bindings[name]
		switch {
		case !ok:
		case bytes.Equal(was.content, e.content) && was.binding.Revision != e.binding.Revision:
			t.Fatalf("unchanged binding %q moved from revision %d to %d", name, was.binding.Revision, e.binding.Revision)
		case !bytes.Equal(was.content, e.content) && e.binding.Revision <= was.binding.Revision:
			t.Fatalf("changed binding %q went from revision %d to %d", name, was.binding.Revision, e.binding.Revision)
		}
		if _, ok := cur.unresolved[name]; ok {
			t.Fatalf("%q is both bound and unresolved", name)
		}
	}
}

// checkAcks checks that every snapshot and unchanged message the stream
// delivered before it ended was acknowledged, in order, with its version,
// hash and the stream's token.
func checkAcks(t *testing.T, stream []byte, cp *fuzzStreamCP) {
	t.Helper()
	var want []protocol.Ack
	token := ""
	dec := json.NewDecoder(bytes.NewReader(stream))
	for {
		var m protocol.Message
		if dec.Decode(&m) != nil || m.Type == protocol.TypeError {
			break
		}
		if m.Stream != "" {
			token = m.Stream
		}
		switch m.Type {
		case protocol.TypeSnapshot:
			hash := m.Hash
			if hash == "" {
				hash = protocol.Hash(m.Bindings, m.Unresolved)
			}
			want = append(want, protocol.Ack{SidecarID: "sc-fuzz", Stream: token, Version: m.Version, Hash: hash})
		case protocol.TypeUnchanged:
			want = append(want, protocol.Ack{SidecarID: "sc-fuzz", Stream: token, Version: m.Version, Hash: m.Hash})
		}
	}
	cp.mu.Lock()
	got := slices.Clone(cp.acks)
	cp.mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("%d acks for %d snapshot and unchanged messages", len(got), len(want))
	}
	for i := range got {
		g := got[i]
		g.Error = ""
		if g != want[i] {
			t.Fatalf("ack %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// checkAPI checks that the API serves the cache: the list is the
// snapshot, and each bound name answers its binding.
func checkAPI(t *testing.T, s *Sidecar, snap *snapshot) {
	t.Helper()
	code, body := serve(s.Handler(), localRequest("GET", "/v1/bindings", nil))
	if !snap.loaded {
		checkProblem(t, "GET /v1/bindings", code, body, http.StatusServiceUnavailable)
		return
	}
	var list struct {
		Bindings   []registry.Binding    `json:"bindings"`
		Unresolved []registry.Unresolved `json:"unresolved"`
		Version    int64                 `json:"version"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /v1/bindings = %d %s, want 200 and JSON", code, body)
	}
	var names []string
	for _, b := range list.Bindings {
		names = append(names, b.Name)
	}
	if !slices.Equal(names, snap.names) || len(list.Unresolved) != len(snap.unresolved) || list.Version != snap.version {
		t.Fatalf("GET /v1/bindings lists %q, %d unresolved, version %d; the cache holds %q, %d, %d",
			names, len(list.Unresolved), list.Version, snap.names, len(snap.unresolved), snap.version)
	}
	for _, name := range snap.names {
		path := "/v1/bindings/" + url.PathEscape(name)
		code, body := serve(s.Handler(), localRequest("GET", path, nil))
		checkProblem(t, "GET "+path, code, body)
		if registry.ValidateName("name", name) != nil {
			continue // a name no function can declare: any answer but a 5xx
		}
		var b registry.Binding
		if code != http.StatusOK || json.Unmarshal(body, &b) != nil || b.Name != name || b.Revision != snap.bindings[name].binding.Revision {
			t.Fatalf("GET %s = %d %s, want the binding at revision %d", path, code, body, snap.bindings[name].binding.Revision)
		}
	}
}

// checkTree checks that parent holds only root and the entries in
// allowed, and that every symlink under root stays inside it (planted
// ones excepted).
func checkTree(t *testing.T, parent, root string, planted map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		if p := filepath.Join(parent, de.Name()); p != root && planted[p] == "" {
			t.Fatalf("%s was created beside the binding root", p)
		}
	}
	_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		if want, ok := planted[p]; ok && want == target {
			return nil
		}
		if filepath.IsAbs(target) || !strings.HasPrefix(filepath.Join(filepath.Dir(p), target), root+string(filepath.Separator)) {
			t.Fatalf("symlink %s -> %s points outside the binding root", p, target)
		}
		return nil
	})
}

// Hostile states of the binding root before a write.
const (
	preNone       = iota
	preSymlinkDir // the binding's directory is a symlink out of the root
	preOwnedLinks // ddi's directory, with links out of the root in it
	preForeignDir // a directory ddi did not create
	preStates
)

func FuzzWriteBinding(f *testing.F) {
	f.Add("db", "postgresql", "postgres://pg.team:5432/app", "sslmode", "disable", "password", "s3cr3t", uint8(preNone))
	f.Add("cache", "redis", "redis://:pw@10.0.0.1/0", "type", "evil", "uri", "x", uint8(preNone))
	f.Add("greeter", "http", "https://api.example/v1", "host", "override", "provider", "evil", uint8(preNone))
	f.Add("../escape", "http", "http://a", "k", "v", "s", "v", uint8(preNone))
	f.Add("..", "http", "http://a", "k", "v", "s", "v", uint8(preNone))
	f.Add("ok", "http", "http://a", "../../etc/passwd", "x", "s", "v", uint8(preNone))
	f.Add("ok", "http", "http://a", "k", "v", "a/b", "x", uint8(preNone))
	f.Add("ok", "http", "http://a", "..data", "x", ".ddi-binding", "x", uint8(preNone))
	f.Add("mine", "http", "http://a", "k", "v", "s", "v", uint8(preSymlinkDir))
	f.Add("mine", "http", "http://a", "k", "v", "s", "v", uint8(preOwnedLinks))
	f.Add("mine", "http", "http://a", "k", "v", "k", "w", uint8(preOwnedLinks))
	f.Add("mine", "http", "http://a", "k", "v", "s", "v", uint8(preForeignDir))
	f.Add("x", "", "", "k.ey-1_", "\x00\xff", "s", "", uint8(preNone))
	f.Fuzz(func(t *testing.T, name, typ, endpoint, cfgKey, cfgVal, secKey, secVal string, pre uint8) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		outside := filepath.Join(parent, "outside")
		for _, d := range []string{root, outside} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		keep := filepath.Join(outside, "keep")
		if err := os.WriteFile(keep, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		planted := map[string]string{outside: "dir"}
		plant := func(target, link string) {
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			planted[link] = target
		}
		validName := registry.ValidateName("name", name) == nil
		dir := filepath.Join(root, name)
		state := int(pre % preStates)
		if !validName {
			state = preNone // the test plants only inside the root
		}
		switch state {
		case preSymlinkDir:
			plant(outside, dir)
		case preOwnedLinks:
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, markerFile), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			plant(outside, filepath.Join(dir, dataLink))
			plant(outside, filepath.Join(dir, "..data_tmp"))
			if registry.ValidateConfigKey("key", cfgKey) == nil && cfgKey != "type" && cfgKey != "provider" {
				plant(keep, filepath.Join(dir, cfgKey))
			}
		case preForeignDir:
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "type"), []byte("theirs"), 0o644); err != nil {
				t.Fatal(err)
			}
		}

		b := registry.Binding{Name: name, Provider: "p", Type: typ, Endpoints: []registry.Endpoint{{URL: endpoint, Ready: true}},
			Config: map[string]string{cfgKey: cfgVal}, Secret: map[string]string{secKey: secVal}}
		err := writeBinding(root, &b)
		checkTree(t, parent, root, planted)
		if got, _ := os.ReadFile(keep); string(got) != "keep" {
			t.Fatalf("a file outside the binding root changed: %q", got)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 1 {
			t.Fatalf("something was written outside the binding root: %v", ents)
		}
		validKeys := registry.ValidateConfigKey("key", cfgKey) == nil && registry.ValidateConfigKey("key", secKey) == nil
		var refused *refusedError
		switch {
		case !validName || !validKeys:
			if !errors.As(err, &refused) {
				t.Fatalf("writeBinding(name %q, keys %q, %q) = %v, want a refusal", name, cfgKey, secKey, err)
			}
			return
		case state == preSymlinkDir || state == preForeignDir:
			if !errors.As(err, &refused) {
				t.Fatalf("writeBinding into a directory ddi does not own = %v, want a refusal", err)
			}
			if err := removeBinding(root, name); !errors.As(err, &refused) {
				t.Fatalf("removeBinding of a directory ddi does not own = %v, want a refusal", err)
			}
			checkTree(t, parent, root, planted)
			return
		case err != nil:
			t.Fatalf("writeBinding(%+v) = %v, want nil", b, err)
		}

		// What a reader of the directory sees.
		want := map[string]string{"type": typ, "provider": "p"}
		if cfgKey != "type" && cfgKey != "provider" {
			want[cfgKey] = cfgVal
		}
		if secKey != "type" && secKey != "provider" {
			want[secKey] = secVal
		}
		for k, v := range want {
			got, err := os.ReadFile(filepath.Join(dir, k))
			if err != nil || string(got) != v {
				t.Fatalf("%s/%s = %q, %v; want %q", name, k, got, err, v)
			}
		}
		if secKey != "type" && secKey != "provider" {
			if fi, err := os.Stat(filepath.Join(dir, secKey)); err != nil || fi.Mode().Perm()&0o007 != 0 {
				t.Fatalf("secret file %s/%s: mode %v, %v; want no access for others", name, secKey, fi.Mode(), err)
			}
		}

		// A second version replaces the first: the secret key goes.
		b.Config = map[string]string{cfgKey: cfgVal + "2"}
		b.Secret = nil
		if err := writeBinding(root, &b); err != nil {
			t.Fatalf("second writeBinding = %v", err)
		}
		checkTree(t, parent, root, planted)
		if secKey != cfgKey && secKey != "type" && secKey != "provider" && !derivedKey(secKey) {
			if _, err := os.Lstat(filepath.Join(dir, secKey)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s/%s survived a version without it: %v", name, secKey, err)
			}
		}
		versions, _ := filepath.Glob(filepath.Join(dir, versionPref+"*"))
		if len(versions) != 1 {
			t.Fatalf("version directories %q, want exactly one", versions)
		}
		if err := removeBinding(root, name); err != nil {
			t.Fatalf("removeBinding = %v", err)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("removeBinding left %s: %v", dir, err)
		}
		if got, _ := os.ReadFile(keep); string(got) != "keep" {
			t.Fatalf("a file outside the binding root changed: %q", got)
		}
	})
}

// derivedKey reports whether bindingFiles may derive key from an endpoint.
func derivedKey(key string) bool {
	switch key {
	case "uri", "host", "port", "username", "password", "database":
		return true
	}
	return false
}
