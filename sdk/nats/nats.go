// Package nats lets ddi inject NATS connections (*nats.Conn of
// github.com/nats-io/nats.go). Import it for its side effect to make Inject
// fill such fields from bindings of type nats:
//
//	import _ "ddi.dev/ddi/sdk/nats"
//
//	var deps struct {
//		Events *nats.Conn `ddi:"events"`
//	}
//
// The connection follows its binding without being rebuilt, through
// nats.go's own reconnect machinery: a custom dialer dials the current
// binding's address on every (re)connect, and a UserInfoHandler hands out
// the current credentials. When the binding moves to another server or its
// credentials change, the connection is told to reconnect (ForceReconnect):
// it flushes what it has written, buffers new publishes while it
// reconnects, then replays its subscriptions on the new server and sends
// the buffer. docs/sdk.md describes what happens to in-flight requests.
//
// It must not log or return credentials.
package nats

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	ddi "ddi.dev/ddi/sdk"
)

func init() {
	ddi.RegisterFactory([]string{"nats"}, NewConn)
}

// ReconnectWait is how long the connection waits between attempts to
// reach a server that does not answer.
const ReconnectWait = 100 * time.Millisecond

// dialTimeout bounds one dial and the binding lookup before it.
const dialTimeout = 5 * time.Second

func targetKey(b ddi.Binding) string {
	h := sha256.Sum256([]byte(b.Value("password") + "\x00" + b.Value("token")))
	return strings.Join([]string{b.Addr(), b.Value("username"), hex.EncodeToString(h[:8])}, "|")
}

// binder dials and authenticates for one dependency.
type binder struct {
	dep    *ddi.Dependency
	dialer net.Dialer

	mu     sync.Mutex
	target string // what the live connection was dialled for
}

// Dial implements nats.CustomDialer: it ignores the address nats.go picked
// from its server pool and dials the current binding's.
func (bd *binder) Dial(network, _ string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	b, err := bd.dep.Binding(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := bd.dialer.DialContext(ctx, network, b.Addr())
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w", b.Provider, err)
	}
	bd.mu.Lock()
	bd.target = targetKey(b)
	bd.mu.Unlock()
	return conn, nil
}

func (bd *binder) userInfo() (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	b, err := bd.dep.Binding(ctx)
	if err != nil {
		return "", ""
	}
	return b.Value("username"), b.Value("password")
}

// moved reports whether b targets something else than the live connection.
func (bd *binder) moved(b ddi.Binding) bool {
	bd.mu.Lock()
	defer bd.mu.Unlock()
	return bd.target != targetKey(b)
}

// NewConn builds the *nats.Conn of a dependency (see the package
// documentation). It reconnects forever, every ReconnectWait. Unless the
// dependency is lazy, the server must answer now; a lazy connection starts
// in the reconnecting state and connects as soon as it can.
func NewConn(ctx context.Context, dep *ddi.Dependency) (*nats.Conn, error) {
	bd := &binder{dep: dep, dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}}
	opts := []nats.Option{
		nats.Name("ddi-" + dep.Alias),
		nats.SetCustomDialer(bd),
		nats.UserInfoHandler(bd.userInfo),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
		nats.RetryOnFailedConnect(dep.Lazy()),
		nats.Timeout(dialTimeout),
	}
	if b, err := dep.Binding(ctx); err == nil && b.Value("token") != "" {
		opts = append(opts, nats.TokenHandler(func() string {
			cur, _ := dep.Binding(context.Background())
			return cur.Value("token")
		}))
	}
	// The server list is only nats.go's bookkeeping: the dialer picks the
	// address at every (re)connect. Use the binding's URL when there is
	// one, else a literal IP: nats.go resolves host names in its list
	// before dialling, which must not stall on a name that does not exist.
	// Read the live server with ConnectedAddr, not ConnectedUrl.
	seed := "nats://127.0.0.1:4222"
	if b, err := dep.Binding(ctx); err == nil && b.Endpoint() != "" {
		seed = b.Endpoint()
	}
	nc, err := nats.Connect(seed, opts...)
	if err != nil {
		b, berr := dep.Binding(ctx)
		if berr != nil {
			return nil, berr
		}
		return nil, fmt.Errorf("provider %q at %s is unreachable: %w", b.Provider, b.Addr(), err)
	}
	dep.OnChange(func(b ddi.Binding) {
		if bd.moved(b) {
			_ = nc.ForceReconnect()
		}
	})
	return nc, nil
}
