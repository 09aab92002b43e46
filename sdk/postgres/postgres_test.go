package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/dditest"
	"ddi.dev/ddi/sdk/dditest/testservers"
	"ddi.dev/ddi/sdk/postgres"
)

// Documented bounds (docs/sdk.md, "Failover window").
const (
	// switchWindow is how long after a binding change new queries may
	// still reach the old server.
	switchWindow = time.Second
)

func binding(pg *testservers.Postgres) ddi.Binding {
	return ddi.Binding{
		Name: "db", Provider: fmt.Sprintf("pg-%d", pg.Port), Type: "postgresql", Version: "15.0.0",
		Endpoints: []ddi.Endpoint{{URL: pg.URL(), Ready: true}},
		Config:    map[string]string{"database": "app", "sslmode": "disable"},
		Secret:    map[string]string{"username": "app", "password": pg.Password},
	}
}

func switchTo(sc *dditest.Sidecar, pg *testservers.Postgres) int64 {
	nb := binding(pg)
	return sc.Update("db", func(b *ddi.Binding) {
		b.Provider, b.Endpoints, b.Secret = nb.Provider, nb.Endpoints, nb.Secret
	})
}

type deps struct {
	DB   *sql.DB       `ddi:"db"`
	Pool *pgxpool.Pool `ddi:"db"`
}

func inject(t testing.TB, sc *dditest.Sidecar) *deps {
	t.Helper()
	var d deps
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := sc.Client().Inject(ctx, &d); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Cleanup(func() { d.DB.Close(); d.Pool.Close() })
	return &d
}

func serverPort(ctx context.Context, db *sql.DB) (int, error) {
	var port int
	err := db.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&port)
	return port, err
}

func TestRoundTrip(t *testing.T) {
	pg := testservers.StartPostgres(t)
	sc := dditest.NewSidecar(binding(pg))
	defer sc.Close()
	d := inject(t, sc)
	ctx := t.Context()

	if _, err := d.DB.ExecContext(ctx, "CREATE TABLE orders (id int PRIMARY KEY, item text)"); err != nil {
		t.Fatalf("create table through *sql.DB: %v", err)
	}
	if _, err := d.Pool.Exec(ctx, "INSERT INTO orders VALUES (1, 'book')"); err != nil {
		t.Fatalf("insert through *pgxpool.Pool: %v", err)
	}
	var item string
	if err := d.DB.QueryRowContext(ctx, "SELECT item FROM orders WHERE id = $1", 1).Scan(&item); err != nil || item != "book" {
		t.Fatalf("select = %q, %v; want book", item, err)
	}
	var user string
	if err := d.Pool.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "app" {
		t.Errorf("current_user = %q, %v; want app (from the binding's secret)", user, err)
	}
}

// load runs queries on workers goroutines every interval until stop, and
// counts the failures and which server answered.
type load struct {
	failures atomic.Int64
	queries  atomic.Int64
	lastFail atomic.Int64 // unix nanos of the last failure
	mu       sync.Mutex
	ports    map[int]time.Time // first answer from each port
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(db *sql.DB, workers int, interval time.Duration) *load {
	l := &load{ports: map[int]time.Time{}, stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				port, err := serverPort(ctx, db)
				cancel()
				l.queries.Add(1)
				if err != nil {
					l.failures.Add(1)
					l.lastFail.Store(time.Now().UnixNano())
					continue
				}
				l.mu.Lock()
				if _, ok := l.ports[port]; !ok {
					l.ports[port] = time.Now()
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) halt() { close(l.stop); l.wg.Wait() }

func (l *load) firstFrom(port int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.ports[port]
	return t, ok
}

// appSessions counts the app role's sessions on a server.
func appSessions(t *testing.T, pg *testservers.Postgres, before time.Time) int {
	t.Helper()
	db, err := sql.Open("pgx", fmt.Sprintf("postgres://postgres:super-pw@%s/postgres?sslmode=disable", pg.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	q := "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_start < $1"
	if err := db.QueryRowContext(t.Context(), q, before).Scan(&n); err != nil {
		t.Fatalf("count sessions on %s: %v", pg.Addr(), err)
	}
	return n
}

// TestPlannedSwitch moves the dependency to another server while both run:
// no query may fail, new queries land on the new server within the window,
// and the connections to the old server are drained.
func TestPlannedSwitch(t *testing.T) {
	a, b := testservers.StartPostgres(t), testservers.StartPostgres(t)
	sc := dditest.NewSidecar(binding(a))
	defer sc.Close()
	d := inject(t, sc)
	db := d.DB

	l := startLoad(db, 4, 2*time.Millisecond)
	waitUntil(t, func() bool { _, ok := l.firstFrom(a.Port); return ok })
	switched := time.Now()
	switchTo(sc, b)
	waitUntil(t, func() bool { _, ok := l.firstFrom(b.Port); return ok })
	first, _ := l.firstFrom(b.Port)
	time.Sleep(200 * time.Millisecond)
	l.halt()

	t.Logf("planned switch: first query on the new server %v after the binding change; %d queries, %d failed",
		first.Sub(switched), l.queries.Load(), l.failures.Load())
	if n := l.failures.Load(); n != 0 {
		t.Errorf("%d queries failed during a planned switch, want 0", n)
	}
	if lag := first.Sub(switched); lag > switchWindow {
		t.Errorf("first query on the new server %v after the switch, want within %v", lag, switchWindow)
	}
	for range 20 {
		if port, err := serverPort(t.Context(), db); err != nil || port != b.Port {
			t.Fatalf("query after the switch answered by port %d (%v), want %d", port, err, b.Port)
		}
	}
	// The old server's sessions are drained: none of the app's remain.
	waitUntil(t, func() bool { return appSessions(t, a, time.Now()) == 0 })
}

// TestPlannedSwitchDrainsBusyConnections: a connection running a query while
// the binding changes goes back to database/sql's pool after the first
// sweep; buried under a newer connection (the pool hands out the most
// recently returned one first), it would never be reused and refused. It
// must still be closed.
func TestPlannedSwitchDrainsBusyConnections(t *testing.T) {
	a, b := testservers.StartPostgres(t), testservers.StartPostgres(t)
	sc := dditest.NewSidecar(binding(a))
	defer sc.Close()
	db := inject(t, sc).DB

	sleep := func(d time.Duration, done chan<- error) {
		_, err := db.ExecContext(context.Background(), "SELECT pg_sleep($1)", d.Seconds())
		done <- err
	}
	oldBusy, newBusy := make(chan error, 1), make(chan error, 1)
	go sleep(time.Second, oldBusy) // on a, across the switch
	waitUntil(t, func() bool { return appSessions(t, a, time.Now()) > 0 })
	switchTo(sc, b)
	waitUntil(t, func() bool { port, err := serverPort(t.Context(), db); return err == nil && port == b.Port })
	go sleep(2*time.Second, newBusy) // on b, returned after the one on a
	for _, c := range []chan error{oldBusy, newBusy} {
		if err := <-c; err != nil {
			t.Fatalf("pg_sleep: %v", err)
		}
	}
	// One query at a time only ever takes the top connection.
	deadline := time.Now().Add(10 * time.Second)
	for appSessions(t, a, time.Now()) != 0 {
		if port, err := serverPort(t.Context(), db); err != nil || port != b.Port {
			t.Fatalf("query after the switch answered by port %d (%v), want %d", port, err, b.Port)
		}
		if time.Now().After(deadline) {
			t.Fatal("a session on the old server is still open 10s after the switch")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFailover kills the server the function uses and switches the
// binding to a second one after a detection delay; the same *sql.DB then
// serves from the second server. Queries fail only while the binding still
// names the dead server.
func TestFailover(t *testing.T) {
	a, b := testservers.StartPostgres(t), testservers.StartPostgres(t)
	sc := dditest.NewSidecar(binding(a))
	defer sc.Close()
	db := inject(t, sc).DB

	const (
		workers   = 4
		interval  = 5 * time.Millisecond
		detection = 200 * time.Millisecond // control plane notices the dead provider
	)
	l := startLoad(db, workers, interval)
	waitUntil(t, func() bool { _, ok := l.firstFrom(a.Port); return ok })

	killed := time.Now()
	a.Stop()
	time.Sleep(detection)
	switched := time.Now()
	switchTo(sc, b)
	waitUntil(t, func() bool { _, ok := l.firstFrom(b.Port); return ok })
	first, _ := l.firstFrom(b.Port)
	time.Sleep(switchWindow)
	l.halt()

	failed := l.failures.Load()
	lastFail := time.Unix(0, l.lastFail.Load())
	t.Logf("failover: server down %v before the switch; first query on the new server %v after the switch; %d of %d queries failed; last failure %v after the switch",
		switched.Sub(killed), first.Sub(switched), failed, l.queries.Load(), lastFail.Sub(switched))
	// Bound: every query issued while the binding named the dead server
	// (outage / interval per worker), plus one per worker in flight.
	bound := int64(workers) * (int64(switched.Sub(killed)/interval) + 2)
	if failed > bound {
		t.Errorf("%d queries failed, want at most %d (the outage window)", failed, bound)
	}
	if failed > 0 && lastFail.Sub(switched) > switchWindow {
		t.Errorf("a query failed %v after the switch, want none later than %v", lastFail.Sub(switched), switchWindow)
	}
	if port, err := serverPort(t.Context(), db); err != nil || port != b.Port {
		t.Errorf("after failover the same *sql.DB answers from %d (%v), want %d", port, err, b.Port)
	}
}

// TestCredentialRotation changes the role's password on the server, then in
// the binding's secret. After the window no query fails, the handle is the
// same, and no session opened with the old password remains.
func TestCredentialRotation(t *testing.T) {
	pg := testservers.StartPostgres(t)
	sc := dditest.NewSidecar(binding(pg))
	defer sc.Close()
	d := inject(t, sc)

	l := startLoad(d.DB, 4, 2*time.Millisecond)
	waitUntil(t, func() bool { _, ok := l.firstFrom(pg.Port); return ok })
	rotated := time.Now()
	pg.SetPassword(t, "app-pw-2")
	time.Sleep(50 * time.Millisecond) // the secret store catches up
	updated := time.Now()
	sc.Update("db", func(b *ddi.Binding) { b.Secret["password"] = "app-pw-2" })
	time.Sleep(switchWindow)
	failedInWindow := l.failures.Load()
	time.Sleep(500 * time.Millisecond)
	l.halt()

	t.Logf("rotation: %d of %d queries failed, all between the server change and the secret change + %v",
		l.failures.Load(), l.queries.Load(), switchWindow)
	if after := l.failures.Load() - failedInWindow; after != 0 {
		t.Errorf("%d queries failed after the rotation window, want 0", after)
	}
	if n := l.failures.Load(); n > 0 && time.Unix(0, l.lastFail.Load()).After(updated.Add(switchWindow)) {
		t.Errorf("last failure %v after the secret change, want within %v", time.Unix(0, l.lastFail.Load()).Sub(updated), switchWindow)
	}
	// Sessions authenticated with the old password are gone.
	waitUntil(t, func() bool { return appSessions(t, pg, rotated) == 0 })
	var one int
	if err := d.Pool.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
		t.Errorf("pool after rotation: %v", err)
	}
}

func TestPoolSwitch(t *testing.T) {
	a, b := testservers.StartPostgres(t), testservers.StartPostgres(t)
	sc := dditest.NewSidecar(binding(a))
	defer sc.Close()
	pool := inject(t, sc).Pool
	ctx := t.Context()
	port := func() int {
		var p int
		if err := pool.QueryRow(ctx, "SELECT inet_server_port()").Scan(&p); err != nil {
			t.Fatalf("pool query: %v", err)
		}
		return p
	}
	if p := port(); p != a.Port {
		t.Fatalf("pool answers from %d, want %d", p, a.Port)
	}
	// Hold a connection across the switch: it is not cut.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	switchTo(sc, b)
	waitUntil(t, func() bool { return port() == b.Port })
	var p int
	if err := tx.QueryRow(ctx, "SELECT inet_server_port()").Scan(&p); err != nil || p != a.Port {
		t.Errorf("transaction open across the switch: port %d, %v; want it to finish on %d", p, err, a.Port)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Errorf("commit across the switch: %v", err)
	}
	conn.Release() // closed now, not returned to the pool
	waitUntil(t, func() bool { return appSessions(t, a, time.Now()) == 0 })
}

func TestConnString(t *testing.T) {
	tests := []struct {
		name string
		b    ddi.Binding
		want string
	}{
		{
			name: "keys win over the URL",
			b: ddi.Binding{Type: "postgresql", Endpoints: []ddi.Endpoint{{URL: "postgresql://u0:p0@db:6000/url_db?sslmode=require", Ready: true}},
				Config: map[string]string{"database": "orders"}, Secret: map[string]string{"username": "app", "password": "s3cret"}},
			want: "postgres://app:s3cret@db:6000/orders?sslmode=require",
		},
		{
			name: "url only, default port and sslmode",
			b:    ddi.Binding{Type: "postgresql", Endpoints: []ddi.Endpoint{{URL: "postgres://u0@db/url_db", Ready: true}}},
			want: "postgres://u0@db:5432/url_db?sslmode=prefer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := postgres.ConnString(tt.b)
			if err != nil || got != tt.want {
				t.Errorf("ConnString() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := postgres.ConnString(ddi.Binding{Name: "db"}); !errors.Is(err, ddi.ErrNoEndpoint) {
		t.Errorf("ConnString without endpoint: %v, want ErrNoEndpoint", err)
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

// BenchmarkSwitchToNewPostgres measures the time from a provider switch at
// the sidecar to the first query served by the new server, through one
// *sql.DB that a worker queries back to back.
func BenchmarkSwitchToNewPostgres(b *testing.B) {
	servers := []*testservers.Postgres{testservers.StartPostgres(b), testservers.StartPostgres(b)}
	sc := dditest.NewSidecar(binding(servers[0]))
	defer sc.Close()
	db := inject(b, sc).DB
	ctx := context.Background()
	cur := 0
	var took []time.Duration
	for b.Loop() {
		next := servers[1-cur]
		start := time.Now()
		switchTo(sc, next)
		for {
			if port, err := serverPort(ctx, db); err == nil && port == next.Port {
				break
			}
		}
		took = append(took, time.Since(start))
		cur = 1 - cur
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*9/10].Microseconds())/1000, "p90-ms")
}
