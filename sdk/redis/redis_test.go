package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/dditest"
	"ddi.dev/ddi/sdk/dditest/testservers"
	_ "ddi.dev/ddi/sdk/redis"
)

const switchWindow = time.Second

func binding(r *testservers.Redis, password string) ddi.Binding {
	return ddi.Binding{
		Name: "cache", Provider: fmt.Sprintf("redis-%d", r.Port), Type: "redis", Version: "7.0.0",
		Endpoints: []ddi.Endpoint{{URL: "redis://" + r.Addr, Ready: true}},
		Secret:    map[string]string{"password": password},
	}
}

func inject(t *testing.T, sc *dditest.Sidecar) *redis.Client {
	t.Helper()
	var d struct {
		Cache *redis.Client `ddi:"cache"`
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := sc.Client().Inject(ctx, &d); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Cleanup(func() { d.Cache.Close() })
	return d.Cache
}

// mark stores the server's name under "server" on it directly.
func mark(t *testing.T, r *testservers.Redis, password, name string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: password})
	defer c.Close()
	if err := c.Set(t.Context(), "server", name, 0).Err(); err != nil {
		t.Fatalf("mark %s: %v", r.Addr, err)
	}
}

// clients counts the connections a server has, without the one asking.
func clients(t *testing.T, r *testservers.Redis, password string) int {
	t.Helper()
	return strings.Count(strings.TrimSpace(clientList(t, r, password)), "\n")
}

// clientList is the server's CLIENT LIST, asked on a connection of its own.
func clientList(t *testing.T, r *testservers.Redis, password string) string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: password})
	defer c.Close()
	list, err := c.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST on %s: %v", r.Addr, err)
	}
	return list
}

func TestRoundTrip(t *testing.T) {
	r := testservers.StartRedis(t, "pw1")
	sc := dditest.NewSidecar(binding(r, "pw1"))
	defer sc.Close()
	c := inject(t, sc)
	ctx := t.Context()
	if err := c.Set(ctx, "greeting", "hello", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "greeting").Result(); err != nil || got != "hello" {
		t.Errorf("GET = %q, %v; want hello", got, err)
	}
}

type load struct {
	failures, ops atomic.Int64
	mu            sync.Mutex
	first         map[string]time.Time
	stop          chan struct{}
	wg            sync.WaitGroup
}

func startLoad(c *redis.Client, workers int) *load {
	l := &load{first: map[string]time.Time{}, stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(time.Millisecond):
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				v, err := c.Get(ctx, "server").Result()
				cancel()
				l.ops.Add(1)
				if err != nil {
					l.failures.Add(1)
					continue
				}
				l.mu.Lock()
				if _, ok := l.first[v]; !ok {
					l.first[v] = time.Now()
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) seen(name string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.first[name]
	return t, ok
}

func TestAddressSwitch(t *testing.T) {
	a, b := testservers.StartRedis(t, "pw"), testservers.StartRedis(t, "pw")
	mark(t, a, "pw", "A")
	mark(t, b, "pw", "B")
	sc := dditest.NewSidecar(binding(a, "pw"))
	defer sc.Close()
	c := inject(t, sc)

	l := startLoad(c, 4)
	waitUntil(t, func() bool { _, ok := l.seen("A"); return ok })
	switched := time.Now()
	nb := binding(b, "pw")
	sc.Update("cache", func(bd *ddi.Binding) { bd.Provider, bd.Endpoints = nb.Provider, nb.Endpoints })
	waitUntil(t, func() bool { _, ok := l.seen("B"); return ok })
	first, _ := l.seen("B")
	time.Sleep(200 * time.Millisecond)
	close(l.stop)
	l.wg.Wait()

	t.Logf("redis switch: first command on the new server %v after the change; %d of %d commands failed",
		first.Sub(switched), l.failures.Load(), l.ops.Load())
	if n := l.failures.Load(); n != 0 {
		t.Errorf("%d commands failed during the switch, want 0", n)
	}
	if lag := first.Sub(switched); lag > switchWindow {
		t.Errorf("first command on the new server %v after the switch, want within %v", lag, switchWindow)
	}
	for range 20 {
		if v, err := c.Get(t.Context(), "server").Result(); err != nil || v != "B" {
			t.Fatalf("GET server after the switch = %q, %v; want B", v, err)
		}
	}
	// The connections to the old server are drained.
	waitUntil(t, func() bool { return clients(t, a, "pw") == 0 })
}

// TestAddressSwitchDrainsBusyConnections: a connection that is running a
// command while the binding changes goes back to the pool after the first
// sweep; buried under a newer connection in go-redis's LIFO pool, it would
// never be handed out (and dropped) again. It must still be closed.
func TestAddressSwitchDrainsBusyConnections(t *testing.T) {
	a, b := testservers.StartRedis(t, "pw"), testservers.StartRedis(t, "pw")
	mark(t, b, "pw", "B")
	sc := dditest.NewSidecar(binding(a, "pw"))
	defer sc.Close()
	c := inject(t, sc)

	// A connection to a, busy for a second (BLPOP's least) across the switch.
	oldBusy := make(chan error, 1)
	go func() { oldBusy <- c.BLPop(context.Background(), time.Second, "nothing").Err() }()
	waitUntil(t, func() bool { return strings.Contains(clientList(t, a, "pw"), "cmd=blpop") })

	nb := binding(b, "pw")
	sc.Update("cache", func(bd *ddi.Binding) { bd.Provider, bd.Endpoints = nb.Provider, nb.Endpoints })
	waitUntil(t, func() bool { v, err := c.Get(t.Context(), "server").Result(); return err == nil && v == "B" })

	// A connection to b, busy until after the old one is back in the
	// pool: it goes back on top of it.
	newBusy := make(chan error, 1)
	go func() { newBusy <- c.BLPop(context.Background(), 2*time.Second, "nothing").Err() }()
	if err := <-oldBusy; err != redis.Nil {
		t.Fatalf("BLPOP on the old server = %v, want redis.Nil (timed out)", err)
	}
	if err := <-newBusy; err != redis.Nil {
		t.Fatalf("BLPOP on the new server = %v, want redis.Nil (timed out)", err)
	}
	// One command at a time only ever takes the top connection.
	deadline := time.Now().Add(10 * time.Second)
	for clients(t, a, "pw") != 0 {
		if v, err := c.Get(t.Context(), "server").Result(); err != nil || v != "B" {
			t.Fatalf("GET server after the switch = %q, %v; want B", v, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("a connection to the old server is still open 10s after the switch:\n%s", clientList(t, a, "pw"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPasswordRotation(t *testing.T) {
	r := testservers.StartRedis(t, "pw1")
	mark(t, r, "pw1", "A")
	sc := dditest.NewSidecar(binding(r, "pw1"))
	defer sc.Close()
	c := inject(t, sc)

	l := startLoad(c, 4)
	waitUntil(t, func() bool { _, ok := l.seen("A"); return ok })
	admin := redis.NewClient(&redis.Options{Addr: r.Addr, Password: "pw1"})
	defer admin.Close()
	if err := admin.ConfigSet(t.Context(), "requirepass", "pw2").Err(); err != nil {
		t.Fatal(err)
	}
	sc.Update("cache", func(b *ddi.Binding) { b.Secret["password"] = "pw2" })
	time.Sleep(switchWindow)
	inWindow := l.failures.Load()
	time.Sleep(300 * time.Millisecond)
	close(l.stop)
	l.wg.Wait()
	t.Logf("redis rotation: %d of %d commands failed", l.failures.Load(), l.ops.Load())
	if after := l.failures.Load() - inWindow; after != 0 {
		t.Errorf("%d commands failed after the rotation window, want 0", after)
	}
	// A fresh connection authenticates with the new password.
	if err := c.Conn().Ping(t.Context()).Err(); err != nil {
		t.Errorf("new connection after rotation: %v", err)
	}
}

func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
