// Command orders is an example function that gets its dependencies
// injected by ddi: a PostgreSQL database (db), a Redis cache (cache), a
// NATS connection (events) and an HTTP client for the payments function
// (payments). It never names a host, a driver setting or a password: the
// sidecar that `ddi run` (or the Kubernetes webhook) puts beside it says
// which providers to use, and the injected handles follow provider
// switches and credential rotations without a restart.
//
//	POST /orders {"item":"book","amount_cents":1250}   charge, store, cache, publish
//	GET  /orders/{id}                                   from the cache, else the database
//	GET  /info                                          which servers answer right now
//
// See README.md in this directory for how to run it.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	ddi "ddi.dev/ddi/sdk"
	_ "ddi.dev/ddi/sdk/nats"
	_ "ddi.dev/ddi/sdk/postgres"
	_ "ddi.dev/ddi/sdk/redis"
)

// Deps are the function's dependencies, filled by ddi.Inject.
type Deps struct {
	DB       *sql.DB       `ddi:"db"`
	Cache    *redis.Client `ddi:"cache"`
	Events   *nats.Conn    `ddi:"events"`
	Payments *http.Client  `ddi:"payments"` // through the sidecar's invoke proxy
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], log); err != nil {
		log.Error("orders failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	lazy := fs.Bool("lazy", false, "start even if a dependency is not usable yet (ddi.Lazy)")
	addr := fs.String("listen", ":"+envOr("PORT", "8080"), "address to serve on ($PORT)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	var deps Deps
	opts := []ddi.InjectOption{ddi.Timeout(30 * time.Second)}
	if *lazy {
		opts = append(opts, ddi.Lazy())
	}
	if err := ddi.Inject(ctx, &deps, opts...); err != nil {
		return err
	}
	defer deps.DB.Close()
	defer deps.Cache.Close()
	defer deps.Events.Close()
	if err := migrate(ctx, deps.DB); err != nil {
		return err
	}

	srv := &http.Server{
		Addr:              *addr,
		Handler:           (&handler{deps: deps, log: log}).routes(),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("orders serving", "addr", *addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

func migrate(ctx context.Context, db *sql.DB) error {
	const ddl = `CREATE TABLE IF NOT EXISTS orders (
		id           bigserial PRIMARY KEY,
		item         text      NOT NULL,
		amount_cents bigint    NOT NULL,
		charged_by   text      NOT NULL,
		created_at   timestamptz NOT NULL DEFAULT now())`
	var err error
	for range 30 { // a lazy start may come before the database
		if _, err = db.ExecContext(ctx, ddl); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("create table orders: %w", err)
}

type handler struct {
	deps Deps
	log  *slog.Logger
}

func (h *handler) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", h.create)
	mux.HandleFunc("GET /orders/{id}", h.get)
	mux.HandleFunc("GET /info", h.info)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

// Order is an order as stored and returned.
type Order struct {
	ID          int64  `json:"id"`
	Item        string `json:"item"`
	AmountCents int64  `json:"amount_cents"`
	ChargedBy   string `json:"charged_by"`
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var o Order
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&o); err != nil || o.Item == "" || o.AmountCents <= 0 {
		http.Error(w, `want {"item":"...","amount_cents":N} with N > 0`, http.StatusBadRequest)
		return
	}
	by, err := h.charge(ctx, o.AmountCents)
	if err != nil {
		h.fail(w, "charge", err, http.StatusBadGateway)
		return
	}
	o.ChargedBy = by
	err = h.deps.DB.QueryRowContext(ctx,
		"INSERT INTO orders (item, amount_cents, charged_by) VALUES ($1, $2, $3) RETURNING id",
		o.Item, o.AmountCents, o.ChargedBy).Scan(&o.ID)
	if err != nil {
		h.fail(w, "store", err, http.StatusServiceUnavailable)
		return
	}
	body, _ := json.Marshal(o)
	if err := h.deps.Cache.Set(ctx, cacheKey(o.ID), body, time.Hour).Err(); err != nil {
		h.log.Warn("cache order", "id", o.ID, "err", err) // the database has it
	}
	if err := h.deps.Events.Publish("orders.created", body); err != nil {
		h.log.Warn("publish orders.created", "id", o.ID, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write(append(body, '\n'))
}

// charge asks the payments function, through ddi, to charge an amount.
func (h *handler) charge(ctx context.Context, cents int64) (string, error) {
	body, _ := json.Marshal(map[string]int64{"amount_cents": cents})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://payments/charge", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.deps.Payments.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		By     string `json:"by"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Status != "charged" {
		return "", fmt.Errorf("payments answered %s (%v)", resp.Status, err)
	}
	return out.By, nil
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "id must be a number", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if body, err := h.deps.Cache.Get(ctx, cacheKey(id)).Bytes(); err == nil {
		w.Header().Set("X-Cache", "hit")
		w.Write(append(body, '\n'))
		return
	}
	var o Order
	err = h.deps.DB.QueryRowContext(ctx, "SELECT id, item, amount_cents, charged_by FROM orders WHERE id = $1", id).
		Scan(&o.ID, &o.Item, &o.AmountCents, &o.ChargedBy)
	if errors.Is(err, sql.ErrNoRows) {
		http.Error(w, "no such order", http.StatusNotFound)
		return
	}
	if err != nil {
		h.fail(w, "load", err, http.StatusServiceUnavailable)
		return
	}
	body, _ := json.Marshal(o)
	_ = h.deps.Cache.Set(ctx, cacheKey(id), body, time.Hour).Err()
	w.Header().Set("X-Cache", "miss")
	w.Write(append(body, '\n'))
}

// info says which servers answer right now, to watch live rebinding.
func (h *handler) info(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	out := map[string]any{"events_server": h.deps.Events.ConnectedAddr()}
	var port int
	var count int64
	if err := h.deps.DB.QueryRowContext(ctx, "SELECT inet_server_port(), (SELECT count(*) FROM orders)").Scan(&port, &count); err == nil {
		out["db_server_port"], out["orders"] = port, count
	} else {
		out["db_error"] = err.Error()
	}
	if v, err := h.deps.Cache.ConfigGet(ctx, "port").Result(); err == nil {
		out["cache_server_port"] = v["port"]
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (h *handler) fail(w http.ResponseWriter, what string, err error, status int) {
	h.log.Error(what, "err", err)
	http.Error(w, what+": "+err.Error(), status)
}

func cacheKey(id int64) string { return "order:" + strconv.FormatInt(id, 10) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
