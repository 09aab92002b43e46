package ddi_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/dditest"
	"ddi.dev/ddi/sdk/dditest/testservers"
	_ "ddi.dev/ddi/sdk/nats"
	_ "ddi.dev/ddi/sdk/postgres"
	_ "ddi.dev/ddi/sdk/redis"
)

// These tests use real servers (see dditest/testservers); go test -short
// skips them.

const secretPW = "s3cret-pw-never-logged"

func pgBinding(name string, pg *testservers.Postgres) ddi.Binding {
	return ddi.Binding{
		Name: name, Provider: "pg-" + name, Type: "postgresql",
		Endpoints: []ddi.Endpoint{{URL: pg.URL(), Ready: true}},
		Config:    map[string]string{"sslmode": "disable"},
		Secret:    map[string]string{"username": "app", "password": pg.Password},
	}
}

func TestInjectBadInput(t *testing.T) {
	pg := testservers.StartPostgres(t)
	down := testservers.FreePort(t) // nothing listens there
	sc := dditest.NewSidecar(
		pgBinding("db", pg),
		ddi.Binding{
			Name: "down", Provider: "pg-down", Type: "postgresql",
			Endpoints: []ddi.Endpoint{{URL: fmt.Sprintf("postgresql://127.0.0.1:%d/app", down), Ready: true}},
			Config:    map[string]string{"sslmode": "disable"},
			Secret:    map[string]string{"username": "app", "password": secretPW},
		},
	)
	defer sc.Close()

	var deps struct {
		Ghost *sql.DB       `ddi:"ghost"` // unknown alias
		Clock time.Time     `ddi:"db"`    // no factory for the type
		Cache *redis.Client `ddi:"db"`    // a postgresql binding into a Redis field
		Down  *sql.DB       `ddi:"down"`  // unreachable provider
		OK    *sql.DB       `ddi:"db"`
	}
	err := sc.Client().Inject(t.Context(), &deps, ddi.Timeout(5*time.Second))
	var ie *ddi.InjectError
	if !errors.As(err, &ie) {
		t.Fatalf("Inject error = %v, want *InjectError", err)
	}
	t.Logf("Inject error:\n%v", err)
	want := []struct{ field, alias, typ, reason string }{
		{"Ghost", "ghost", "*sql.DB", `dependency "ghost" is not declared by this function`},
		{"Clock", "db", "time.Time", "no factory builds time.Time"},
		{"Cache", "db", "*redis.Client", `bound to provider "pg-db" of type "postgresql", but *redis.Client takes [redis]`},
		{"Down", "down", "*sql.DB", fmt.Sprintf(`provider "pg-down" at 127.0.0.1:%d is unreachable`, down)},
	}
	if len(ie.Fields) != len(want) {
		t.Fatalf("Inject reported %d fields, want %d:\n%v", len(ie.Fields), len(want), err)
	}
	for i, w := range want {
		f := ie.Fields[i]
		if f.Field != w.field || f.Alias != w.alias || f.Type != w.typ || !strings.Contains(f.Err.Error(), w.reason) {
			t.Errorf("field error %d = %v, want field %s alias %s type %s reason %q", i, f, w.field, w.alias, w.typ, w.reason)
		}
		if !strings.Contains(err.Error(), f.Error()) {
			t.Errorf("Inject error does not include %q", f)
		}
	}
	if !errors.Is(err, ddi.ErrWrongType) {
		t.Error("errors.Is(err, ErrWrongType) = false, want true")
	}
	if strings.Contains(err.Error(), secretPW) || strings.Contains(err.Error(), pg.Password) {
		t.Error("Inject error contains a password")
	}
	if deps.OK != nil {
		t.Error("a failed eager Inject set fields; want the struct unchanged")
	}
}

// TestInjectLazy: with Lazy the function starts even though dependencies
// are missing or down; the handles work as soon as the bindings do.
func TestInjectLazy(t *testing.T) {
	pg := testservers.StartPostgres(t)
	down := testservers.FreePort(t)
	sc := dditest.NewSidecar(ddi.Binding{
		Name: "db", Provider: "pg-down", Type: "postgresql",
		Endpoints: []ddi.Endpoint{{URL: fmt.Sprintf("postgresql://127.0.0.1:%d/app", down), Ready: true}},
	})
	defer sc.Close()
	sc.Unbind("cache", "redis", "no provider has type redis")

	var deps struct {
		DB    *sql.DB       `ddi:"db"`
		Cache *redis.Client `ddi:"cache"`
		Late  *sql.DB       `ddi:"ghost"`
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start := time.Now()
	if err := sc.Client().Inject(ctx, &deps, ddi.Lazy()); err != nil {
		t.Fatalf("lazy Inject: %v", err)
	}
	t.Logf("lazy Inject with a dead and a missing provider took %v", time.Since(start))
	if deps.DB == nil || deps.Cache == nil || deps.Late == nil {
		t.Fatalf("lazy Inject left fields nil: %+v", deps)
	}
	err := deps.DB.PingContext(ctx)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(down)) {
		t.Errorf("query on a dead provider = %v, want an error naming its address", err)
	}
	if err := deps.Cache.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), `"cache"`) {
		t.Errorf("command on an unresolved dependency = %v, want an error naming the alias", err)
	}

	// The provider comes up (the binding is fixed): the same handle works.
	sc.Bind(pgBinding("db", pg))
	waitFor(t, func() (error, bool) { err := deps.DB.PingContext(ctx); return err, err == nil })
}

// BenchmarkInject4 measures Inject of four dependencies (Postgres, Redis,
// NATS and an HTTP client) against running servers, with the Client's cache
// already loaded; each round opens and pings every client.
func BenchmarkInject4(b *testing.B) {
	pg := testservers.StartPostgres(b)
	rd := testservers.StartRedis(b, "")
	nt := testservers.StartNATS(b, "", "")
	payments := httptest.NewServer(http.NotFoundHandler())
	defer payments.Close()
	sc := dditest.NewSidecar(
		pgBinding("db", pg),
		ddi.Binding{Name: "cache", Provider: "redis", Type: "redis", Endpoints: []ddi.Endpoint{{URL: "redis://" + rd.Addr, Ready: true}}},
		ddi.Binding{Name: "events", Provider: "nats", Type: "nats", Endpoints: []ddi.Endpoint{{URL: nt.URL, Ready: true}}},
		ddi.Binding{Name: "payments", Provider: "payments", Type: "http", Endpoints: []ddi.Endpoint{{URL: payments.URL, Ready: true}}},
	)
	defer sc.Close()
	c := sc.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		b.Fatal(err)
	}
	type deps struct {
		DB       *sql.DB       `ddi:"db"`
		Cache    *redis.Client `ddi:"cache"`
		Events   *nats.Conn    `ddi:"events"`
		Payments *http.Client  `ddi:"payments"`
	}
	var took []time.Duration
	for b.Loop() {
		var d deps
		start := time.Now()
		if err := c.Inject(ctx, &d); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		b.StopTimer()
		d.DB.Close()
		d.Cache.Close()
		d.Events.Close()
		b.StartTimer()
	}
	reportQuantiles(b, took)
}

// reportQuantiles adds the median and 90th percentile to a benchmark's
// result: on a shared machine they say more than the mean.
func reportQuantiles(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*9/10].Microseconds())/1000, "p90-ms")
}
