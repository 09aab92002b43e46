package client

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// recorded is one request the fake server saw.
type recorded struct {
	Method, Path, Query, Auth, Body string
}

func fakeServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *[]recorded) {
	t.Helper()
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs = append(reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), string(b)})
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &reqs
}

func TestClientRequests(t *testing.T) {
	p := registry.Provider{Namespace: "team", Name: "greeter", Type: "http", Revision: 4}
	srv, reqs := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && r.URL.Path == "/v1/providers":
			httpapi.WriteJSON(w, 200, map[string]any{"providers": []any{map[string]any{"namespace": "team", "name": "greeter", "type": "http", "secretKeys": []string{"token"}}}, "revision": 9})
		case r.Method == "PUT":
			httpapi.WriteJSON(w, 201, p)
		case r.Method == "DELETE":
			w.WriteHeader(204)
		case r.URL.Path == "/v1/sidecars":
			httpapi.WriteJSON(w, 200, map[string]any{"sidecars": []map[string]any{{"id": "sc", "ackedVersion": 3, "dependencies": []string{"db=pg"}}}})
		case r.URL.Path == "/v1/resolve":
			httpapi.WriteJSON(w, 200, registry.Binding{Name: "g", Provider: "greeter", Revision: 4})
		default:
			httpapi.WriteJSON(w, 200, p)
		}
	})
	c := &Client{BaseURL: srv.URL + "/"}
	ctx := t.Context()

	list, err := c.ListProviders(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Providers) != 1 || list.Revision != 9 || list.Providers[0].SecretKeys[0] != "token" {
		t.Errorf("ListProviders() = %+v, want one provider with secret key token at revision 9", list)
	}
	if got, err := c.GetProvider(ctx, "team", "greeter"); err != nil || got.Revision != 4 {
		t.Errorf("GetProvider() = %+v, %v, want revision 4", got, err)
	}
	if _, created, err := c.PutProvider(ctx, p); err != nil || !created {
		t.Errorf("PutProvider() created, err = %v, %v, want true, nil", created, err)
	}
	if err := c.DeleteProvider(ctx, "team", "greeter", 4); err != nil {
		t.Errorf("DeleteProvider() = %v", err)
	}
	if _, err := c.RenewProvider(ctx, "team", "greeter", 30*time.Second); err != nil {
		t.Errorf("RenewProvider() = %v", err)
	}
	if b, err := c.Resolve(ctx, registry.Consumer{Namespace: "team", Name: "fn"}, "g=greeter"); err != nil || b.Provider != "greeter" {
		t.Errorf("Resolve() = %+v, %v", b, err)
	}
	if sc, err := c.Sidecars(ctx); err != nil || len(sc) != 1 || sc[0].AckedVersion != 3 {
		t.Errorf("Sidecars() = %+v, %v", sc, err)
	}
	if err := c.Ack(ctx, protocol.Ack{SidecarID: "sc", Version: 3, Hash: "h"}); err != nil {
		t.Errorf("Ack() = %v", err)
	}

	pj, _ := json.Marshal(p)
	want := []recorded{
		{Method: "GET", Path: "/v1/providers", Query: "namespace=team"},
		{Method: "GET", Path: "/v1/providers/team/greeter"},
		{Method: "PUT", Path: "/v1/providers/team/greeter", Body: string(pj)},
		{Method: "DELETE", Path: "/v1/providers/team/greeter", Query: "revision=4"},
		{Method: "POST", Path: "/v1/providers/team/greeter/renew", Body: `{"ttl":"30s"}`},
		{Method: "POST", Path: "/v1/resolve", Body: `{"consumer":{"namespace":"team","name":"fn"},"dependency":"g=greeter"}`},
		{Method: "GET", Path: "/v1/sidecars"},
		{Method: "POST", Path: "/v1/ack", Body: `{"sidecarID":"sc","stream":"","version":3,"hash":"h"}`},
	}
	if diff := cmp.Diff(want, *reqs); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestClientErrorsAreProblems(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    httpapi.Problem
	}{
		{
			name: "problem document",
			handler: func(w http.ResponseWriter, r *http.Request) {
				p := httpapi.NewProblem(404, "unresolved", "dependency \"db\" is unresolved")
				p.Dependency, p.Selector = "db", "postgresql@^15"
				httpapi.WriteProblem(w, p)
			},
			want: httpapi.Problem{Type: "https://ddi.dev/problems/unresolved", Title: "Not Found", Status: 404,
				Detail: "dependency \"db\" is unresolved", Dependency: "db", Selector: "postgresql@^15"},
		},
		{
			name:    "plain text",
			handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "upstream sad", http.StatusBadGateway) },
			want:    httpapi.Problem{Type: "about:blank", Title: "Bad Gateway", Status: 502, Detail: "upstream sad"},
		},
		{
			name:    "empty body",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusConflict) },
			want:    httpapi.Problem{Type: "about:blank", Title: "Conflict", Status: 409, Detail: "control plane answered 409 Conflict"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakeServer(t, tt.handler)
			c := &Client{BaseURL: srv.URL}
			_, err := c.Resolve(t.Context(), registry.Consumer{Name: "fn"}, "db=postgresql@^15")
			var p *httpapi.Problem
			if !errors.As(err, &p) {
				t.Fatalf("Resolve() error = %v, want a *httpapi.Problem", err)
			}
			if diff := cmp.Diff(tt.want, *p); diff != "" {
				t.Errorf("problem (-want +got):\n%s", diff)
			}
			if got := StatusCode(err); got != tt.want.Status {
				t.Errorf("StatusCode() = %d, want %d", got, tt.want.Status)
			}
		})
	}
	if got := StatusCode(errors.New("dial failed")); got != 0 {
		t.Errorf("StatusCode(transport error) = %d, want 0", got)
	}
}

func TestClientReadsTokenEveryTime(t *testing.T) {
	srv, reqs := fakeServer(t, func(w http.ResponseWriter, r *http.Request) { httpapi.WriteJSON(w, 200, map[string]any{}) })
	tok := filepath.Join(t.TempDir(), "token")
	c := &Client{BaseURL: srv.URL, TokenFile: tok}
	for _, v := range []string{"first\n", "second"} {
		if err := os.WriteFile(tok, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Sidecars(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	got := []string{(*reqs)[0].Auth, (*reqs)[1].Auth}
	if diff := cmp.Diff([]string{"Bearer first", "Bearer second"}, got); diff != "" {
		t.Errorf("Authorization headers (-want +got):\n%s", diff)
	}
	c.TokenFile = filepath.Join(t.TempDir(), "missing")
	if _, err := c.Sidecars(t.Context()); err == nil {
		t.Error("Sidecars() with a missing token file = nil error, want one")
	}
}

func TestStream(t *testing.T) {
	srv, reqs := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		_ = enc.Encode(protocol.Message{Type: protocol.TypeSnapshot, Version: 2, Hash: "h", Bindings: []registry.Binding{{Name: "g", Revision: 2}}})
		_ = enc.Encode(protocol.Message{Type: protocol.TypeHeartbeat})
	})
	c := &Client{BaseURL: srv.URL}
	s, err := c.Stream(t.Context(), protocol.Hello{SidecarID: "sc", ResumeVersion: 1, ResumeHash: "old"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var types []string
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv() = %v", err)
		}
		types = append(types, m.Type)
	}
	if diff := cmp.Diff([]string{"snapshot", "heartbeat"}, types); diff != "" {
		t.Errorf("message types (-want +got):\n%s", diff)
	}
	if got, want := (*reqs)[0].Body, `{"sidecarID":"sc","consumer":{"namespace":"","name":""},"resumeVersion":1,"resumeHash":"old"}`; got != want {
		t.Errorf("hello = %s, want %s", got, want)
	}

	bad, _ := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteProblem(w, httpapi.FieldProblem("sidecarID", "sidecarID is required"))
	})
	_, err = (&Client{BaseURL: bad.URL}).Stream(t.Context(), protocol.Hello{})
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Field != "sidecarID" {
		t.Errorf("Stream() error = %v, want a problem naming sidecarID", err)
	}
}

// TestStreamToleratesNewerControlPlanes is the version-skew rule sidecars
// rely on (docs/protocol.md, "Version skew"): fields a newer control plane
// adds to stream messages, at the top or inside a binding, are ignored and
// the rest is read as usual. A sidecar that predates weighted splits
// reads a split binding this way: its own fields, the primary's, and
// nothing else.
func TestStreamToleratesNewerControlPlanes(t *testing.T) {
	line := `{"type":"snapshot","version":3,"hash":"h","futureField":{"x":1},` +
		`"bindings":[{"name":"greeter","provider":"greeter-v1","namespace":"team","type":"http",` +
		`"endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"selector":"90%greeter-v1,10%greeter-v2","revision":3,` +
		`"split":[{"selector":"greeter-v1","weight":90,"share":90,"primary":true}],"anotherFutureField":[1,2]}]}` + "\n"
	srv, _ := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = io.WriteString(w, line)
	})
	s, err := (&Client{BaseURL: srv.URL}).Stream(t.Context(), protocol.Hello{SidecarID: "sc"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := s.Recv()
	if err != nil {
		t.Fatalf("Recv() of a message with fields this version does not know = %v, want it read", err)
	}
	if m.Version != 3 || len(m.Bindings) != 1 || m.Bindings[0].Provider != "greeter-v1" || len(m.Bindings[0].Endpoints) != 1 {
		t.Errorf("Recv() = %+v, want version 3 and greeter bound to greeter-v1", m)
	}
}
