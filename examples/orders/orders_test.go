package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestDDIRun runs the example the way its README says, with the real ddi
// binary named by DDI_BIN: `ddi dev`, local.sh up (real PostgreSQL, Redis,
// NATS and payments), then `ddi run ... -- orders`. It places an order,
// reads it back from the cache, then registers payments-v2 and shows the
// running function's next call reach it without a restart.
func TestDDIRun(t *testing.T) {
	bin := os.Getenv("DDI_BIN")
	if bin == "" {
		t.Skip("set DDI_BIN to a built ddi binary (go build -o bin/ddi ./cmd/ddi; DDI_BIN=$PWD/bin/ddi) to run the orders example through ddi dev and ddi run")
	}
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	dir := t.TempDir()
	// PostgreSQL runs as the postgres user when we are root: it must reach
	// the state directory.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	cpURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	env := append(os.Environ(), "DDI_CONTROL_PLANE="+cpURL, "DDI="+bin, "ORDERS_STATE="+filepath.Join(dir, "state"))

	startProc(t, env, filepath.Join(dir, "dev.log"), bin, "dev", "--data", filepath.Join(dir, "cp"), "--listen", strings.TrimPrefix(cpURL, "http://"))
	waitUntil(t, 20*time.Second, "control plane", func() error {
		return exec.Command(bin, "--control-plane", cpURL, "provider", "list").Run()
	})

	up := exec.Command("./local.sh", "up")
	up.Env = env
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("local.sh up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		down := exec.Command("./local.sh", "down")
		down.Env = env
		if out, err := down.CombinedOutput(); err != nil {
			t.Errorf("local.sh down: %v\n%s", err, out)
		}
	})
	ports := readPorts(t, filepath.Join(dir, "state", "ports"))

	orders := filepath.Join(dir, "orders")
	if out, err := exec.Command("go", "build", "-o", orders, ".").CombinedOutput(); err != nil {
		t.Fatalf("build orders: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	bindings := filepath.Join(dir, "bindings")
	fnDone := startProc(t, env, filepath.Join(dir, "orders.log"), bin, "run", "--name", "orders", "--binding-root", bindings,
		"--dep", "db=postgresql@*", "--dep", "cache=redis@*", "--dep", "events=nats@*", "--dep", "payments=http@*",
		"--", orders, "-listen", addr)
	base := "http://" + addr
	waitUntil(t, 60*time.Second, "orders /healthz", func() error {
		select {
		case <-fnDone:
			t.Fatal("ddi run exited before the function served (see orders.log below)")
		default:
		}
		_, err := get(base + "/healthz")
		return err
	})

	o := placeOrder(t, base)
	if o.ChargedBy != "payments-v1" {
		t.Errorf("order charged by %q, want payments-v1", o.ChargedBy)
	}
	resp, err := http.Get(fmt.Sprintf("%s/orders/%d", base, o.ID))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Cache") != "hit" {
		t.Errorf("GET /orders/%d: X-Cache = %q, want hit (the order was cached in Redis)", o.ID, resp.Header.Get("X-Cache"))
	}
	body, err := get(base + "/info")
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	_ = json.Unmarshal(body, &info)
	if fmt.Sprint(info["db_server_port"]) != ports["pg"] || fmt.Sprint(info["cache_server_port"]) != ports["redis"] ||
		info["events_server"] != "127.0.0.1:"+ports["nats"] {
		t.Errorf("/info = %v, want the servers of local.sh (%v)", info, ports)
	}
	if typ, err := os.ReadFile(filepath.Join(bindings, "db", "type")); err != nil || strings.TrimSpace(string(typ)) != "postgresql" {
		t.Errorf("binding file db/type = %q, %v; want postgresql", typ, err)
	}

	checkProjection(t, bindings, ports)

	// Live: payments-v2 registers with a higher version; the running
	// function's next calls reach it.
	payPort := freePort(t)
	startProc(t, env, filepath.Join(dir, "payments-v2.log"), filepath.Join(dir, "state", "payments"), "-name", "payments-v2", "-listen", fmt.Sprintf("127.0.0.1:%d", payPort))
	add := exec.Command(bin, "provider", "add", "payments-v2", "--type", "http", "--version", "2.0.0", "--url", fmt.Sprintf("http://127.0.0.1:%d", payPort))
	add.Env = env
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("provider add payments-v2: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(bin, "--control-plane", cpURL, "provider", "rm", "payments-v2").Run() })
	switched := time.Now()
	waitUntil(t, 10*time.Second, "an order charged by payments-v2", func() error {
		if o := placeOrder(t, base); o.ChargedBy != "payments-v2" {
			return fmt.Errorf("charged by %s", o.ChargedBy)
		}
		return nil
	})
	t.Logf("payments-v2 served the function %v after it registered", time.Since(switched))

	// Credential rotation through the real control plane and sidecar: the
	// Redis password changes on the server, then in the provider's secret;
	// every existing connection is killed, so the function's *redis.Client
	// must dial again with what its SDK watch received.
	rotateRedis(t, env, bin, dir, ports["redis"])
	waitUntil(t, 10*time.Second, "a cache hit after the rotation", func() error {
		resp, err := http.Get(fmt.Sprintf("%s/orders/%d", base, o.ID))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "hit" {
			return fmt.Errorf("GET /orders/%d: %s, X-Cache %q", o.ID, resp.Status, resp.Header.Get("X-Cache"))
		}
		return nil
	})
	if _, err := get(base + "/info"); err != nil {
		t.Errorf("/info after the rotation: %v", err)
	}
	select {
	case <-fnDone:
		t.Error("the function exited during the switches")
	default:
	}
}

func rotateRedis(t *testing.T, env []string, bin, dir, port string) {
	t.Helper()
	old, err := os.ReadFile(filepath.Join(dir, "state", "redis-secret.env"))
	if err != nil {
		t.Fatal(err)
	}
	oldPW := strings.TrimSpace(strings.TrimPrefix(string(old), "password="))
	const newPW = "rotated-redis-pw"
	admin := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, Password: oldPW})
	defer admin.Close()
	ctx := context.Background()
	if err := admin.ConfigSet(ctx, "requirepass", newPW).Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}
	secret := filepath.Join(dir, "redis-secret-2.env")
	if err := os.WriteFile(secret, []byte("password="+newPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add := exec.Command(bin, "provider", "add", "orders-redis", "--type", "redis", "--version", "7.0.0",
		"--url", "redis://127.0.0.1:"+port, "--secret-file", secret)
	add.Env = env
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("provider add orders-redis (rotation): %v\n%s", err, out)
	}
	time.Sleep(200 * time.Millisecond) // the snapshot reaches the sidecar and the SDK
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatalf("CLIENT KILL: %v", err)
	}
}

// checkProjection reads the files the real sidecar projected with npm
// kube-service-bindings (a client library nobody here wrote), one binding
// at a time (see docs/sdk.md on that library's multi-binding lookup).
func checkProjection(t *testing.T, root string, ports map[string]string) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found: install it with apt-get install -y nodejs npm")
	}
	prefix, _ := filepath.Abs("../../.cache/node")
	mods := filepath.Join(prefix, "node_modules")
	if _, err := os.Stat(filepath.Join(mods, "kube-service-bindings")); err != nil {
		if out, err := exec.Command("npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "--no-save", "kube-service-bindings@2.1.0").CombinedOutput(); err != nil {
			t.Fatalf("npm install kube-service-bindings: %v\n%s", err, out)
		}
	}
	for _, c := range []struct{ name, typ, client, port string }{
		{"db", "POSTGRESQL", "pg", "pg"},
		{"cache", "REDIS", "ioredis", "redis"},
	} {
		one := t.TempDir()
		if err := os.Symlink(filepath.Join(root, c.name), filepath.Join(one, c.name)); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("node", "-e", fmt.Sprintf(`process.stdout.write(JSON.stringify(require("kube-service-bindings").getBinding(%q, %q)))`, c.typ, c.client))
		cmd.Env = append(os.Environ(), "NODE_PATH="+mods, "SERVICE_BINDING_ROOT="+one)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kube-service-bindings getBinding(%s, %s) on the sidecar's files: %v\n%s", c.typ, c.client, err, out)
		}
		var m map[string]any
		_ = json.Unmarshal(out, &m)
		if m["host"] != "127.0.0.1" || m["port"] != ports[c.port] || m["password"] == nil || m["password"] == "" {
			t.Errorf("kube-service-bindings read %s as host %v port %v (password set: %v), want 127.0.0.1:%s with a password",
				c.name, m["host"], m["port"], m["password"] != nil, ports[c.port])
		}
	}
}

type order struct {
	ID        int64  `json:"id"`
	ChargedBy string `json:"charged_by"`
}

func placeOrder(t *testing.T, base string) order {
	t.Helper()
	resp, err := http.Post(base+"/orders", "application/json", bytes.NewReader([]byte(`{"item":"book","amount_cents":1250}`)))
	if err != nil {
		t.Fatalf("POST /orders: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders = %s: %s", resp.Status, body)
	}
	var o order
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatalf("POST /orders answered %q: %v", body, err)
	}
	return o
}

func get(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, body)
	}
	return body, nil
}

func readPorts(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(line, "=")
		out[k] = v
	}
	return out
}

// startProc starts a process in its own group, logging to logPath, and
// stops it (SIGTERM, then SIGKILL) in t.Cleanup. The channel is closed when
// it exits.
func startProc(t *testing.T, env []string, logPath, name string, args ...string) <-chan struct{} {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", filepath.Base(logPath), b)
		}
	})
	return done
}

func waitUntil(t *testing.T, d time.Duration, what string, try func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		err := try()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready within %v: %v", what, d, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
