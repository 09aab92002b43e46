// Package testservers starts throwaway PostgreSQL, Redis and NATS servers
// for integration tests: real Debian binaries, free loopback ports, data in
// t.TempDir(), stopped in t.Cleanup. The SDK's tests use it, and so do the
// main module's tests that run binding-file readers against files the real
// sidecar writes (which is why it is not under sdk/internal).
//
// The tests that use it run by default and are skipped only with
// `go test -short`. When a server binary is missing they fail with the name
// of the Debian package to install (apt-get install -y postgresql
// redis-server nats-server); they never skip silently.
//
// It is for tests only; it must not be imported by non-test code.
package testservers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Need skips t under -short and fails it when binary is missing, naming the
// Debian package that provides it. It returns the binary's path.
func Need(t testing.TB, binary, pkg string, extraDirs ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("integration test with a real %s: skipped with -short", binary)
	}
	if p, err := exec.LookPath(binary); err == nil {
		return p
	}
	for _, pattern := range extraDirs {
		dirs, _ := filepath.Glob(pattern)
		sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // newest version first
		for _, d := range dirs {
			p := filepath.Join(d, binary)
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatalf("%s not found: install it with `apt-get install -y %s` (or run go test -short to skip integration tests)", binary, pkg)
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a server child process.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// start runs cmd with its output in logPath.
func start(t testing.TB, name string, cmd *exec.Cmd, logPath string) *process {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: log file: %v", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = mergeAttr(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: start %s: %v", name, cmd.Path, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p
}

func mergeAttr(a *syscall.SysProcAttr) *syscall.SysProcAttr {
	if a == nil {
		a = &syscall.SysProcAttr{}
	}
	a.Setpgid = true
	a.Pdeathsig = syscall.SIGKILL // never outlive the test binary
	return a
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends sig and waits up to 10 s, then kills.
func (p *process) stop(sig syscall.Signal) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// logTail returns the last lines of the process's log, for failures.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// waitTCP waits until addr accepts connections and check (if any) passes,
// or the process exits, or 30 s pass.
func (p *process) waitTCP(t testing.TB, addr string, check func(net.Conn) error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if !p.running() {
			t.Fatalf("%s exited while starting: %v\n%s", p.name, p.err, p.logTail())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			if check != nil {
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				err = check(c)
			}
			c.Close()
			if err == nil {
				return
			}
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not answering on %s after 30s: %v\n%s", p.name, addr, last, p.logTail())
}

// --- Redis -----------------------------------------------------------------

// Redis is a running redis-server.
type Redis struct {
	Addr string // 127.0.0.1:PORT
	Port int
	p    *process
}

// StartRedis starts a redis-server on a free loopback port; password, if
// not empty, is required from clients (requirepass).
func StartRedis(t testing.TB, password string) *Redis {
	t.Helper()
	bin := Need(t, "redis-server", "redis-server")
	dir := t.TempDir()
	port := FreePort(t)
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--protected-mode", "no"}
	if password != "" {
		args = append(args, "--requirepass", password)
	}
	r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port}
	r.p = start(t, "redis-server", exec.Command(bin, args...), filepath.Join(dir, "redis.log"))
	t.Cleanup(r.Stop)
	r.p.waitTCP(t, r.Addr, func(c net.Conn) error {
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
			return fmt.Errorf("PING answered %q", line)
		}
		return nil
	})
	return r
}

// Stop shuts the server down (SIGTERM).
func (r *Redis) Stop() { r.p.stop(syscall.SIGTERM) }

// --- NATS ------------------------------------------------------------------

// NATS is a running nats-server.
type NATS struct {
	URL  string // nats://127.0.0.1:PORT
	Addr string
	Port int
	p    *process
}

// StartNATS starts a nats-server on a free loopback port; user and
// password, if not empty, are required from clients.
func StartNATS(t testing.TB, user, password string) *NATS {
	t.Helper()
	bin := Need(t, "nats-server", "nats-server")
	dir := t.TempDir()
	port := FreePort(t)
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
	n := &NATS{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port}
	n.URL = "nats://" + n.Addr
	if user != "" {
		args = append(args, "--user", user, "--pass", password)
	}
	n.p = start(t, "nats-server", exec.Command(bin, args...), filepath.Join(dir, "nats.log"))
	t.Cleanup(n.Stop)
	n.p.waitTCP(t, n.Addr, func(c net.Conn) error {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "INFO ") {
			return fmt.Errorf("greeting %q, want INFO", line)
		}
		return nil
	})
	return n
}

// Stop shuts the server down (SIGTERM).
func (n *NATS) Stop() { n.p.stop(syscall.SIGTERM) }

// ctxTimeout is a helper for the admin connections of this package.
func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
