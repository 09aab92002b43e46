package controlplane_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

// TestStreamIdleOverHTTP2 keeps a stream idle for longer than the write
// timeout over TLS, where HTTP/2 is negotiated as with the controller's
// stream port: the stream must survive (an expired write deadline resets
// an HTTP/2 stream even while nothing is written).
func TestStreamIdleOverHTTP2(t *testing.T) {
	controlplane.SetStreamWriteTimeout(t, 100*time.Millisecond)
	store, err := bolt.Open(filepath.Join(t.TempDir(), "registry.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv, err := controlplane.New(controlplane.Options{Store: store, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-srv.Ready()
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	defer hs.Close()

	b, _ := json.Marshal(protocol.Hello{SidecarID: "sc-h2", Consumer: registry.Consumer{Name: "frontend"}, Dependencies: []string{"greeter=greeter"}})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", hs.URL+protocol.StreamPath, bytes.NewReader(b))
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("stream protocol = %s, want HTTP/2", resp.Proto)
	}
	msgs := make(chan protocol.Message, 4)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var m protocol.Message
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				msgs <- m
			}
		}
		errc <- sc.Err()
	}()
	next := func() protocol.Message {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case err := <-errc:
			t.Fatalf("stream ended: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("no stream message within 5s")
		}
		return protocol.Message{}
	}
	if m := next(); m.Type != protocol.TypeSnapshot {
		t.Fatalf("first message = %+v, want a snapshot", m)
	}
	time.Sleep(500 * time.Millisecond) // idle: five write timeouts
	put, _ := http.NewRequest("PUT", hs.URL+"/v1/providers/default/greeter", strings.NewReader(`{"type":"http","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}]}`))
	presp, err := hs.Client().Do(put)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if m := next(); m.Type != protocol.TypeSnapshot || len(m.Bindings) != 1 {
		t.Fatalf("after registering greeter = %+v, want a snapshot binding it", m)
	}
}
