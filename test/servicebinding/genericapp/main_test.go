package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestContract checks the HTTP contract the conformance suite's steps
// (features/steps/generic_testapp.py) read: /env, /env/NAME and files.
func TestContract(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "username")
	if err := os.WriteFile(file, []byte("foo"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler(map[string]string{"SERVICE_BINDING_ROOT": "/bindings", "QUOTE": `a"b`}))
	defer srv.Close()
	for _, c := range []struct {
		path, body string
		code       int
	}{
		{"/env", `{"QUOTE":"a\"b","SERVICE_BINDING_ROOT":"/bindings"}`, 200},
		{"/env/SERVICE_BINDING_ROOT", "\"/bindings\"\n", 200},
		{"/env/QUOTE", "\"a\\\"b\"\n", 200},
		{"/env/MISSING", "404 page not found\n", 404},
		{file, "foo", 200},
		{filepath.Join(dir, "password"), "404 page not found\n", 404},
		{dir, "404 page not found\n", 404},
	} {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || string(b) != c.body {
			t.Errorf("GET %s = %d %q, want %d %q", c.path, resp.StatusCode, b, c.code, c.body)
		}
	}
}
