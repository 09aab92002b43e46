package testservers

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBinDirs are where Debian's postgresql packages keep their binaries.
var pgBinDirs = []string{"/usr/lib/postgresql/*/bin"}

// Postgres is a running PostgreSQL server with a database "app" owned by
// the role "app".
type Postgres struct {
	Host     string // 127.0.0.1
	Port     int
	Database string // app
	User     string // app
	Password string // the role's current password

	dir     string // data directory
	bin     string // directory of the server binaries
	cred    *syscall.Credential
	superPW string
	p       *process
	t       testing.TB
}

// StartPostgres initialises a cluster in a temporary directory (initdb) and
// starts it on a free loopback port, with password authentication over TCP.
// As root it runs the server as the "postgres" user (PostgreSQL refuses to
// run as root), making the directory reachable for that user.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	initdb := Need(t, "initdb", "postgresql", pgBinDirs...)
	pg := &Postgres{
		Host: "127.0.0.1", Database: "app", User: "app", Password: "app-pw-1",
		bin: filepath.Dir(initdb), superPW: "super-pw", t: t,
	}
	if _, err := os.Stat(filepath.Join(pg.bin, "postgres")); err != nil {
		// initdb found on PATH may be a symlink; use the real directory.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			pg.bin = filepath.Dir(real)
		}
	}
	root := t.TempDir()
	pg.dir = filepath.Join(root, "data")
	sock := filepath.Join(root, "sock")
	for _, d := range []string{pg.dir, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pwfile := filepath.Join(root, "pw")
	if err := os.WriteFile(pwfile, []byte(pg.superPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		pg.cred = postgresUser(t)
		// The server's user must reach the directories t.TempDir made.
		for d := root; d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
			if d == os.TempDir() {
				break
			}
			_ = os.Chmod(d, 0o755)
		}
		for _, p := range []string{pg.dir, sock, pwfile, root} {
			if err := os.Chown(p, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
				t.Fatalf("chown %s for the postgres user: %v", p, err)
			}
		}
	}

	cmd := exec.Command(initdb, "-D", pg.dir, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	pg.Port = FreePort(t)
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\nshared_buffers = 16MB\n", pg.Port, sock)
	if err := os.WriteFile(filepath.Join(pg.dir, "postgresql.auto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if pg.cred != nil {
		_ = os.Chown(filepath.Join(pg.dir, "postgresql.auto.conf"), int(pg.cred.Uid), int(pg.cred.Gid))
	}
	pg.Start()
	t.Cleanup(pg.Stop)

	pg.Exec(t, fmt.Sprintf("CREATE ROLE app LOGIN PASSWORD '%s'", pg.Password))
	pg.Exec(t, "CREATE DATABASE app OWNER app")
	return pg
}

// postgresUser returns the credential of the "postgres" system user that
// Debian's postgresql package creates.
func postgresUser(t testing.TB) *syscall.Credential {
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root and no postgres user to run the server as (install it with `apt-get install -y postgresql`): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// Start (re)starts the server after Stop or Kill.
func (pg *Postgres) Start() {
	pg.t.Helper()
	if pg.p != nil && pg.p.running() {
		return
	}
	cmd := exec.Command(filepath.Join(pg.bin, "postgres"), "-D", pg.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	pg.p = start(pg.t, "postgres", cmd, filepath.Join(filepath.Dir(pg.dir), fmt.Sprintf("postgres-%d.log", time.Now().UnixNano())))
	pg.p.waitTCP(pg.t, pg.Addr(), nil)
	// Accepting TCP is not enough: wait for the startup to finish.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := ctxTimeout(2 * time.Second)
		c, err := pgx.Connect(ctx, pg.superURL())
		cancel()
		if err == nil {
			c.Close(ctx)
			return
		}
		if time.Now().After(deadline) || !pg.p.running() {
			pg.t.Fatalf("postgres on %s not ready: %v\n%s", pg.Addr(), err, pg.p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down with a fast shutdown (SIGINT): open sessions
// are terminated, as when a database fails over.
func (pg *Postgres) Stop() {
	if pg.p != nil {
		pg.p.stop(syscall.SIGINT)
	}
}

// Addr returns "127.0.0.1:PORT".
func (pg *Postgres) Addr() string { return fmt.Sprintf("%s:%d", pg.Host, pg.Port) }

// URL returns a postgresql:// URL of the server without credentials, as a
// provider endpoint would carry it.
func (pg *Postgres) URL() string {
	return fmt.Sprintf("postgresql://%s/%s", pg.Addr(), pg.Database)
}

func (pg *Postgres) superURL() string {
	return fmt.Sprintf("postgres://postgres:%s@%s/postgres?sslmode=disable", pg.superPW, pg.Addr())
}

// Exec runs statements as the superuser in the database "postgres", or in
// "app" when the statement starts with "app:".
func (pg *Postgres) Exec(t testing.TB, sql string) {
	t.Helper()
	url := pg.superURL()
	if rest, ok := strings.CutPrefix(sql, "app:"); ok {
		url = strings.Replace(url, "/postgres?", "/app?", 1)
		sql = rest
	}
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("postgres %s: connect as superuser: %v", pg.Addr(), err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("postgres %s: %s: %v", pg.Addr(), sql, err)
	}
}

// SetPassword changes the app role's password on the server.
func (pg *Postgres) SetPassword(t testing.TB, password string) {
	t.Helper()
	pg.Exec(t, fmt.Sprintf("ALTER ROLE app PASSWORD '%s'", password))
	pg.Password = password
}
