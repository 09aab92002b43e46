// Package redis lets ddi inject Redis clients (*redis.Client of
// github.com/redis/go-redis/v9). Import it for its side effect to make
// Inject fill such fields from bindings of type redis:
//
//	import _ "ddi.dev/ddi/sdk/redis"
//
//	var deps struct {
//		Cache *redis.Client `ddi:"cache"`
//	}
//
// The client follows its binding without being rebuilt: go-redis's Dialer
// dials the current binding's address for every new connection and its
// CredentialsProviderContext hands out the current credentials. A pooled
// connection dialled for an earlier binding fails go-redis's health check
// when it is next taken from the pool, so it is closed and replaced instead
// of being used; a command running on it finishes. docs/sdk.md describes
// the failover window.
//
// It must not log or return credentials.
package redis

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/internal/drain"
)

func init() {
	ddi.RegisterFactory([]string{"redis"}, NewClient)
}

// errStale is what a connection dialled for an earlier binding answers
// go-redis's health check with, so that the pool drops it.
var errStale = errors.New("ddi: connection belongs to an earlier binding")

// target identifies where and as whom a connection was opened.
type target struct {
	revision int64
	key      string
}

func targetOf(b ddi.Binding) target {
	h := sha256.Sum256([]byte(b.Value("password")))
	u, _ := b.URL()
	scheme := ""
	if u != nil {
		scheme = u.Scheme
	}
	return target{
		revision: b.Revision,
		key:      strings.Join([]string{scheme, b.Addr(), b.Value("username"), hex.EncodeToString(h[:8]), strconv.Itoa(database(b))}, "|"),
	}
}

// database returns the binding's database number: the "database" key, else
// the endpoint URL's path ("redis://host:6379/2"), else 0.
func database(b ddi.Binding) int {
	s := b.Value("database")
	if s == "" {
		if u, err := b.URL(); err == nil {
			s = strings.Trim(u.Path, "/")
		}
	}
	n, _ := strconv.Atoi(s)
	return n
}

// binder dials and authenticates for one dependency.
type binder struct {
	dep     *ddi.Dependency
	current atomic.Pointer[target]
	dialer  net.Dialer

	mu   sync.Mutex
	open map[*boundConn]struct{} // plain TCP connections not yet closed
}

// staleOpen reports whether a connection dialled for an earlier binding is
// still open (idle in the pool or running a command).
func (bd *binder) staleOpen() bool {
	bd.mu.Lock()
	conns := make([]*boundConn, 0, len(bd.open))
	for c := range bd.open {
		conns = append(conns, c)
	}
	bd.mu.Unlock()
	for _, c := range conns {
		if bd.stale(c.target) {
			return true
		}
	}
	return false
}

func (bd *binder) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	b, err := bd.dep.Binding(ctx)
	if err != nil {
		return nil, err
	}
	tg := targetOf(b)
	bd.current.Store(&tg)
	raw, err := bd.dialer.DialContext(ctx, network, b.Addr())
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w", b.Provider, err)
	}
	if u, _ := b.URL(); u != nil && u.Scheme == "rediss" {
		// TLS connections cannot be health-checked by go-redis; they are
		// replaced through ConnMaxLifetime (see docs/sdk.md).
		return tls.Client(raw, &tls.Config{ServerName: b.Host(), MinVersion: tls.VersionTLS12}), nil
	}
	tcp, ok := raw.(*net.TCPConn)
	if !ok {
		return raw, nil
	}
	c := &boundConn{TCPConn: tcp, bd: bd, target: tg}
	bd.mu.Lock()
	bd.open[c] = struct{}{}
	bd.mu.Unlock()
	return c, nil
}

func (bd *binder) credentials(ctx context.Context) (string, string, error) {
	b, err := bd.dep.Binding(ctx)
	if err != nil {
		return "", "", err
	}
	return b.Value("username"), b.Value("password"), nil
}

func (bd *binder) onConnect(ctx context.Context, cn *redis.Conn) error {
	b, err := bd.dep.Binding(ctx)
	if err != nil {
		return err
	}
	if db := database(b); db != 0 {
		return cn.Select(ctx, db).Err()
	}
	return nil
}

// stale reports whether a connection opened for tg no longer matches the
// current binding. While the binding is unresolved connections are kept.
func (bd *binder) stale(tg target) bool {
	b, err := bd.dep.Binding(context.Background())
	if err != nil || b.Revision == tg.revision {
		return false
	}
	cur := bd.current.Load()
	if cur == nil || cur.revision != b.Revision {
		t := targetOf(b)
		bd.current.Store(&t)
		cur = &t
	}
	return cur.key != tg.key
}

// boundConn is a TCP connection that remembers the binding it was dialled
// for. go-redis health-checks an idle connection through SyscallConn before
// reusing it; a stale one answers with an error and is dropped.
type boundConn struct {
	*net.TCPConn
	bd     *binder
	target target
}

// SyscallConn returns the raw connection, or errStale if the connection
// belongs to an earlier binding.
func (c *boundConn) SyscallConn() (syscall.RawConn, error) {
	if c.bd.stale(c.target) {
		return nil, errStale
	}
	return c.TCPConn.SyscallConn()
}

// Close closes the connection and forgets it.
func (c *boundConn) Close() error {
	c.bd.mu.Lock()
	delete(c.bd.open, c)
	c.bd.mu.Unlock()
	return c.TCPConn.Close()
}

// NewClient builds the *redis.Client of a dependency (see the package
// documentation). After every change of the binding, the idle connections
// are swept until no connection of an earlier binding is left (see
// internal/drain).
// Unless the dependency is lazy, it pings the server first.
func NewClient(ctx context.Context, dep *ddi.Dependency) (*redis.Client, error) {
	bd := &binder{dep: dep, dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		open: map[*boundConn]struct{}{}}
	// Addr is informational (the Dialer picks the address at every dial);
	// it must not be a name to resolve: go-redis looks Addr up.
	addr := "127.0.0.1:6379"
	if b, err := dep.Binding(ctx); err == nil && b.Addr() != "" {
		addr = b.Addr()
	}
	client := redis.NewClient(&redis.Options{
		Addr:                       addr,
		Dialer:                     bd.dial,
		CredentialsProviderContext: bd.credentials,
		OnConnect:                  bd.onConnect,
		DialTimeout:                5 * time.Second,
		// Moves are ddi's job: no Redis Enterprise maintenance
		// notifications (they would hand out addresses past the Dialer).
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	dep.OnChange(func(ddi.Binding) { go drain.Run(func(ctx context.Context) { sweep(ctx, client) }, bd.staleOpen) })
	if dep.Lazy() {
		return client, nil
	}
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		b, berr := dep.Binding(ctx)
		if berr != nil {
			return nil, berr
		}
		return nil, fmt.Errorf("provider %q at %s is unreachable: %w", b.Provider, b.Addr(), err)
	}
	return client, nil
}

// sweep takes every idle connection out of the pool once (go-redis drops
// the stale ones on the way and dials replacements), then gives them back.
func sweep(ctx context.Context, client *redis.Client) {
	n := int(client.PoolStats().IdleConns)
	conns := make([]*redis.Conn, 0, n)
	for range n {
		cn := client.Conn()
		conns = append(conns, cn)
		if cn.Ping(ctx).Err() != nil {
			break
		}
	}
	for _, cn := range conns {
		cn.Close()
	}
}
