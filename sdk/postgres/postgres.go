// Package postgres lets ddi inject PostgreSQL clients: *sql.DB (through
// pgx's database/sql connector) and *pgxpool.Pool. Import it for its side
// effect to make Inject fill such fields from bindings of type postgresql:
//
//	import _ "ddi.dev/ddi/sdk/postgres"
//
//	var deps struct {
//		DB *sql.DB `ddi:"db"`
//	}
//
// The handles follow their binding without being rebuilt: every new
// connection reads the current binding (address, database, credentials)
// through pgx's BeforeConnect hook, and connections opened for an older
// binding are drained: never handed out again, closed once their current
// query or transaction is over. docs/sdk.md describes the failover window.
//
// It must not log or return credentials.
package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/internal/drain"
)

func init() {
	ddi.RegisterFactory([]string{"postgresql"}, OpenDB)
	ddi.RegisterFactory([]string{"postgresql"}, NewPool)
}

// DefaultConnectTimeout bounds a new connection when the binding sets no
// connect_timeout, so that a dead server is given up quickly.
const DefaultConnectTimeout = 5 * time.Second

// ConnString returns a postgres:// connection string for a binding: host and
// port from its first ready endpoint; database, username, password and
// sslmode from the binding's keys (secret, then config), falling back to
// the endpoint URL's path, user info and query. sslmode defaults to
// "prefer". The result holds the password: never log it.
func ConnString(b ddi.Binding) (string, error) {
	u, err := b.URL()
	if err != nil {
		return "", err
	}
	out := &url.URL{Scheme: "postgres", Host: net.JoinHostPort(b.Host(), b.Port()), Path: "/"}
	q := u.Query()
	user, pass := b.Value("username"), b.Value("password")
	if user == "" && u.User != nil {
		user = u.User.Username()
	}
	if p, ok := u.User.Password(); pass == "" && ok {
		pass = p
	}
	switch {
	case user != "" && pass != "":
		out.User = url.UserPassword(user, pass)
	case user != "":
		out.User = url.User(user)
	}
	if db := b.Value("database"); db != "" {
		out.Path = "/" + db
	} else if u.Path != "" {
		out.Path = u.Path
	}
	for _, k := range []string{"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name"} {
		if v := b.Value(k); v != "" {
			q.Set(k, v)
		}
	}
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "prefer")
	}
	out.RawQuery = q.Encode()
	return out.String(), nil
}

// ConnConfig parses ConnString(b) into a pgx configuration.
func ConnConfig(b ddi.Binding) (*pgx.ConnConfig, error) {
	s, err := ConnString(b)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(s)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("postgresql binding of provider %q: %w", b.Provider, err)
	}
	if b.Value("connect_timeout") == "" && cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	return cfg, nil
}

// target identifies what a connection was opened to; connections whose
// target differs from the current binding's are stale. It holds a hash of
// the password, not the password.
type target struct {
	revision int64
	key      string
}

const targetKey = "ddi.dev/target"

func targetOf(b ddi.Binding, cfg *pgx.ConnConfig) target {
	h := sha256.Sum256([]byte(cfg.Password))
	return target{
		revision: b.Revision,
		key:      fmt.Sprintf("%s|%d|%s|%s|%s", cfg.Host, cfg.Port, cfg.Database, cfg.User, hex.EncodeToString(h[:8])),
	}
}

// binder keeps the current binding's target and hooks it into pgx.
type binder struct {
	dep     *ddi.Dependency
	current atomic.Pointer[target] // the newest target a connection used

	mu   sync.Mutex
	open map[*pgconn.PgConn]target // *sql.DB only: connections opened, until seen closed
}

// staleOpen reports whether a connection opened for an earlier binding is
// still open (idle in the pool or busy). It forgets closed connections.
func (bd *binder) staleOpen() bool {
	bd.mu.Lock()
	conns := make(map[*pgconn.PgConn]target, len(bd.open))
	for pc, tg := range bd.open {
		if pc.IsClosed() {
			delete(bd.open, pc)
			continue
		}
		conns[pc] = tg
	}
	bd.mu.Unlock()
	for _, tg := range conns {
		if bd.staleTarget(context.Background(), tg) {
			return true
		}
	}
	return false
}

// beforeConnect replaces the configuration of a new connection with the
// current binding's, and tags the connection with its target.
func (bd *binder) beforeConnect(ctx context.Context, cfg *pgx.ConnConfig) error {
	b, err := bd.dep.Binding(ctx)
	if err != nil {
		return err
	}
	fresh, err := ConnConfig(b)
	if err != nil {
		return err
	}
	tg := targetOf(b, fresh)
	bd.current.Store(&tg)
	prev := fresh.AfterConnect
	fresh.AfterConnect = func(ctx context.Context, pc *pgconn.PgConn) error {
		pc.CustomData()[targetKey] = tg
		if bd.open != nil {
			bd.mu.Lock()
			bd.open[pc] = tg
			bd.mu.Unlock()
		}
		if prev != nil {
			return prev(ctx, pc)
		}
		return nil
	}
	*cfg = *fresh
	return nil
}

// stale reports whether conn was opened to another target than the
// current binding's. While the binding is unresolved, connections are kept.
func (bd *binder) stale(ctx context.Context, conn *pgx.Conn) bool {
	tg, ok := conn.PgConn().CustomData()[targetKey].(target)
	return ok && bd.staleTarget(ctx, tg)
}

// staleTarget reports whether tg is another target than the current
// binding's.
func (bd *binder) staleTarget(ctx context.Context, tg target) bool {
	b, err := bd.dep.Binding(ctx)
	if err != nil {
		return false
	}
	if b.Revision == tg.revision {
		return false
	}
	cur := bd.current.Load()
	if cur == nil || cur.revision != b.Revision {
		cfg, err := ConnConfig(b)
		if err != nil {
			return false
		}
		t := targetOf(b, cfg)
		bd.current.Store(&t)
		cur = &t
	}
	return cur.key != tg.key
}

// placeholder is the configuration handed to pgx before any connection;
// beforeConnect replaces it.
func placeholder() (*pgx.ConnConfig, error) {
	return pgx.ParseConfig("postgres://placeholder.invalid/?sslmode=disable")
}

// OpenDB builds the *sql.DB of a dependency: pgx's database/sql connector
// with a BeforeConnect hook that reads the current binding for every new
// connection, and a ResetSession hook that refuses (driver.ErrBadConn) a
// pooled connection opened for an earlier binding, so database/sql closes
// it and uses or opens another one instead; the query is not failed. After
// every change of the binding the idle connections are swept until none of
// an earlier binding is left (see internal/drain). Unless the dependency is
// lazy, it pings the database first.
func OpenDB(ctx context.Context, dep *ddi.Dependency) (*sql.DB, error) {
	cfg, err := placeholder()
	if err != nil {
		return nil, err
	}
	bd := &binder{dep: dep, open: map[*pgconn.PgConn]target{}}
	db := sql.OpenDB(stdlib.GetConnector(*cfg,
		stdlib.OptionBeforeConnect(bd.beforeConnect),
		stdlib.OptionResetSession(func(ctx context.Context, conn *pgx.Conn) error {
			if bd.stale(ctx, conn) {
				return driver.ErrBadConn
			}
			return nil
		}),
	))
	dep.OnChange(func(ddi.Binding) {
		go drain.Run(func(ctx context.Context) { sweep(ctx, db) }, bd.staleOpen)
	})
	if dep.Lazy() {
		return db, nil
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, unreachable(ctx, dep, err)
	}
	return db, nil
}

// sweep drains the idle connections of db after a binding change: it
// checks out as many connections as are idle, which makes database/sql run
// ResetSession on each, close the stale ones and open replacements to the
// new target, then returns them all. Busy connections are left alone; they
// are refused when next handed out, or dropped by a later sweep.
func sweep(ctx context.Context, db *sql.DB) {
	n := db.Stats().Idle
	conns := make([]*sql.Conn, 0, n)
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
}

// NewPool builds the *pgxpool.Pool of a dependency: BeforeConnect reads the
// current binding for every new connection, PrepareConn destroys (and
// replaces) a connection opened for an earlier binding before it is handed
// out, and every change of the binding Resets the pool, which closes idle
// connections at once and busy ones when they are released. Unless the
// dependency is lazy, it pings the database first.
func NewPool(ctx context.Context, dep *ddi.Dependency) (*pgxpool.Pool, error) {
	cc, err := placeholder()
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig = cc
	bd := &binder{dep: dep}
	cfg.BeforeConnect = bd.beforeConnect
	cfg.PrepareConn = func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		return !bd.stale(ctx, conn), nil
	}
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, err
	}
	dep.OnChange(func(ddi.Binding) { pool.Reset() })
	if dep.Lazy() {
		return pool, nil
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, unreachable(ctx, dep, err)
	}
	return pool, nil
}

func unreachable(ctx context.Context, dep *ddi.Dependency, err error) error {
	b, berr := dep.Binding(ctx)
	if berr != nil {
		return berr
	}
	return fmt.Errorf("provider %q at %s is unreachable: %w", b.Provider, b.Addr(), err)
}
