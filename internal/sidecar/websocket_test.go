package sidecar

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"ddi.dev/ddi/internal/registry"
)

// TestInvokeWebSocket relays a WebSocket through /v1/invoke/{name}/...
// with a real client and server: text and binary messages both ways, a
// server-initiated message, and a clean close, longer than the invoke
// timeout.
func TestInvokeWebSocket(t *testing.T) {
	upgrader := websocket.Upgrader{}
	var path atomic.Value
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		path.Store(r.URL.Path)
		if err := c.WriteMessage(websocket.TextMessage, []byte("hello from the provider")); err != nil {
			return
		}
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(kind, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(be.Close)
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.InvokeTimeout = 100 * time.Millisecond // must not cut the WebSocket
	ts := startConnected(t, f, cfg, []registry.Binding{greeterBinding(be.URL)}, nil)

	c, resp, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(ts.url, "http")+"/v1/invoke/greeter/chat", nil)
	if err != nil {
		t.Fatalf("dial through the sidecar: %v (response %v)", err, resp)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hello from the provider" {
		t.Fatalf("first message = %q, %v, want the provider's greeting", msg, err)
	}
	time.Sleep(200 * time.Millisecond) // longer than the invoke timeout
	for _, m := range []struct {
		kind int
		data string
	}{{websocket.TextMessage, "ping"}, {websocket.BinaryMessage, "\x00\x01\x02"}, {websocket.TextMessage, strings.Repeat("x", 100000)}} {
		if err := c.WriteMessage(m.kind, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
		kind, msg, err := c.ReadMessage()
		if err != nil || kind != m.kind || string(msg) != "echo: "+m.data {
			t.Fatalf("echo of a %d-byte message = kind %d, %d bytes, %v; want kind %d, the message back", len(m.data), kind, len(msg), err, m.kind)
		}
	}
	if p, _ := path.Load().(string); p != "/chat" {
		t.Errorf("provider path = %q, want /chat", p)
	}
	if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after the close message: %v, want a normal close from the provider", err)
	}
}
