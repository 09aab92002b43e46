package nats_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/dditest"
	"ddi.dev/ddi/sdk/dditest/testservers"
	_ "ddi.dev/ddi/sdk/nats"
)

const switchWindow = time.Second

func binding(n *testservers.NATS, user, password string) ddi.Binding {
	return ddi.Binding{
		Name: "events", Provider: fmt.Sprintf("nats-%d", n.Port), Type: "nats", Version: "2.9.0",
		Endpoints: []ddi.Endpoint{{URL: n.URL, Ready: true}},
		Secret:    map[string]string{"username": user, "password": password},
	}
}

func inject(t *testing.T, sc *dditest.Sidecar) *nats.Conn {
	t.Helper()
	var d struct {
		Events *nats.Conn `ddi:"events"`
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := sc.Client().Inject(ctx, &d); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Cleanup(d.Events.Close)
	return d.Events
}

func TestRoundTrip(t *testing.T) {
	n := testservers.StartNATS(t, "app", "pw")
	sc := dditest.NewSidecar(binding(n, "app", "pw"))
	defer sc.Close()
	nc := inject(t, sc)

	sub, err := nc.SubscribeSync("orders.created")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("orders.created", []byte("order 1")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(msg.Data) != "order 1" {
		t.Fatalf("NextMsg = %v, %v; want order 1", msg, err)
	}
}

// TestServerSwitch moves the binding to a second server (both running): the
// same *nats.Conn reconnects there and its subscription follows.
func TestServerSwitch(t *testing.T) {
	a, b := testservers.StartNATS(t, "app", "pw"), testservers.StartNATS(t, "app", "pw2")
	sc := dditest.NewSidecar(binding(a, "app", "pw"))
	defer sc.Close()
	nc := inject(t, sc)
	if nc.ConnectedAddr() != a.Addr {
		t.Fatalf("connected to %s, want %s", nc.ConnectedAddr(), a.Addr)
	}
	var got atomic.Int64
	if _, err := nc.Subscribe("orders.>", func(*nats.Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Publish through the switch: nothing fails, publishes made while
	// reconnecting are buffered and sent to the new server.
	var pubErrs atomic.Int64
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		sent := 0
		for {
			select {
			case <-stop:
				done <- sent
				return
			case <-time.After(time.Millisecond):
			}
			if err := nc.Publish("orders.created", []byte("x")); err != nil {
				pubErrs.Add(1)
			}
			sent++
		}
	}()
	time.Sleep(50 * time.Millisecond)
	switched := time.Now()
	nb := binding(b, "app", "pw2") // another server and other credentials
	sc.Update("events", func(bd *ddi.Binding) { bd.Provider, bd.Endpoints, bd.Secret = nb.Provider, nb.Endpoints, nb.Secret })
	waitUntil(t, func() bool { return nc.ConnectedAddr() == b.Addr })
	moved := time.Since(switched)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	sent := <-done
	_ = nc.Flush()

	t.Logf("nats switch: reconnected to the new server %v after the change; %d publishes, %d failed, %d received",
		moved, sent, pubErrs.Load(), got.Load())
	if pubErrs.Load() != 0 {
		t.Errorf("%d publishes failed during the switch, want 0", pubErrs.Load())
	}
	if moved > switchWindow {
		t.Errorf("reconnected %v after the switch, want within %v", moved, switchWindow)
	}

	// The subscription now lives on the new server: a message published
	// there by someone else reaches it.
	other, err := nats.Connect(b.URL, nats.UserInfo("app", "pw2"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	before := got.Load()
	if err := other.Publish("orders.paid", []byte("y")); err != nil {
		t.Fatal(err)
	}
	_ = other.Flush()
	waitUntil(t, func() bool { return got.Load() > before })
}

// TestServerDies kills the server; when the binding names a new one the
// connection reconnects there by itself.
func TestServerDies(t *testing.T) {
	a, b := testservers.StartNATS(t, "", ""), testservers.StartNATS(t, "", "")
	sc := dditest.NewSidecar(binding(a, "", ""))
	defer sc.Close()
	nc := inject(t, sc)
	sub, err := nc.SubscribeSync("ping")
	if err != nil {
		t.Fatal(err)
	}
	a.Stop()
	time.Sleep(200 * time.Millisecond)
	switched := time.Now()
	nb := binding(b, "", "")
	sc.Update("events", func(bd *ddi.Binding) { bd.Provider, bd.Endpoints = nb.Provider, nb.Endpoints })
	waitUntil(t, func() bool { return nc.ConnectedAddr() == b.Addr })
	t.Logf("nats failover: reconnected %v after the switch", time.Since(switched))
	if err := nc.Publish("ping", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Errorf("subscription after failover: %v", err)
	}
}

func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
