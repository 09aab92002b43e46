package sidecar

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"ddi.dev/ddi/internal/registry"
)

// The benchmarks go through real loopback listeners, client included, and
// each has a "direct" twin against a plain net/http server so the ratio is
// what counts: GET /v1/bindings/{name} against a server writing the same
// bytes, invoke against calling the backend itself. "c1" is one caller,
// "c16" sixteen.

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
}

func benchGet(b *testing.B, c *http.Client, url string, parallel bool) {
	b.Helper()
	get := func() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: status %d", url, resp.StatusCode)
		}
	}
	get()
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for b.Loop() {
			get()
		}
		return
	}
	b.SetParallelism(8) // 16 callers on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get()
		}
	})
}

// benchSidecar starts a connected sidecar serving a greeter binding to
// backend.
func benchSidecar(b *testing.B, backend string) *testSidecar {
	b.Helper()
	f := newFakeCP(b)
	return startConnected(b, f, testConfig(f), []registry.Binding{greeterBinding(backend)}, nil)
}

func BenchmarkGetBinding(b *testing.B) {
	s := benchSidecar(b, "http://127.0.0.1:9")
	body := s.cache.load().bindings["greeter"].body
	direct := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(direct.Close)
	for _, bc := range []struct {
		name     string
		url      string
		parallel bool
	}{
		{"sidecar/c1", s.url + "/v1/bindings/greeter", false},
		{"direct/c1", direct.URL + "/", false},
		{"sidecar/c16", s.url + "/v1/bindings/greeter", true},
		{"direct/c16", direct.URL + "/", true},
	} {
		b.Run(bc.name, func(b *testing.B) { benchGet(b, benchClient(), bc.url, bc.parallel) })
	}
}

func BenchmarkInvoke(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello from the greeter\n")
	}))
	b.Cleanup(backend.Close)
	s := benchSidecar(b, backend.URL)
	for _, bc := range []struct {
		name     string
		url      string
		parallel bool
	}{
		{"sidecar/c1", s.url + "/v1/invoke/greeter/hello", false},
		{"direct/c1", backend.URL + "/hello", false},
		{"sidecar/c16", s.url + "/v1/invoke/greeter/hello", true},
		{"direct/c16", backend.URL + "/hello", true},
	} {
		b.Run(bc.name, func(b *testing.B) { benchGet(b, benchClient(), bc.url, bc.parallel) })
	}
}
