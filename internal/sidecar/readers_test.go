package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/sdk/dditest/testservers"
)

// These tests read the files the sidecar's own writer (writeBinding)
// projects with readers nobody here wrote or that carry no ddi code: npm
// kube-service-bindings and the Python example in examples/binding-files.
// There is no other binding-file writer to test them with.

// kubeServiceBindings is the npm package (and version) the test reads the
// files with: a Service Binding client library nobody here wrote.
const kubeServiceBindings = "kube-service-bindings@2.1.0"

// repoRoot returns the repository's root (for its .cache directory and
// examples/binding-files).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sdk", "go.mod")); err != nil {
		t.Fatalf("repository root not found above %s", dir)
	}
	return dir
}

// nodeModules installs kube-service-bindings into .cache/node (gitignored)
// once and returns its node_modules directory.
func nodeModules(t *testing.T) string {
	t.Helper()
	testservers.Need(t, "node", "nodejs")
	npm := testservers.Need(t, "npm", "npm")
	prefix := filepath.Join(repoRoot(t), ".cache", "node")
	mods := filepath.Join(prefix, "node_modules")
	if _, err := os.Stat(filepath.Join(mods, "kube-service-bindings", "package.json")); err == nil {
		return mods
	}
	cmd := exec.Command(npm, "install", "--prefix", prefix, "--no-audit", "--no-fund", "--no-save", kubeServiceBindings)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", kubeServiceBindings, err, out)
	}
	return mods
}

// getBinding runs kube-service-bindings' getBinding(type, client) with
// SERVICE_BINDING_ROOT=root and returns what it mapped.
func getBinding(t *testing.T, mods, root, typ, client string) map[string]any {
	t.Helper()
	script := fmt.Sprintf(`const sb = require("kube-service-bindings");
process.stdout.write(JSON.stringify(sb.getBinding(%q, %q)));`, typ, client)
	cmd := exec.Command("node", "-e", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods, "SERVICE_BINDING_ROOT="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kube-service-bindings getBinding(%s, %s): %v\n%s", typ, client, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("getBinding(%s, %s) printed %q: %v", typ, client, out, err)
	}
	return m
}

// only returns a root holding just one binding of root (a symlink):
// kube-service-bindings 2.1.0 gives up on the first directory whose type
// differs from the one asked for (see docs/sdk.md).
func only(t *testing.T, root, name string) string {
	t.Helper()
	r := t.TempDir()
	if err := os.Symlink(filepath.Join(root, name), filepath.Join(r, name)); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestKubeServiceBindingsReadsProjection(t *testing.T) {
	pg := testservers.StartPostgres(t)
	rd := testservers.StartRedis(t, "redis-pw")
	mods := nodeModules(t)

	// The PostgreSQL endpoint carries the user, password and database in
	// its URL: the writer derives the username, password and database
	// files from it, which is what the readers need.
	pgURL := &url.URL{Scheme: "postgresql", User: url.UserPassword(pg.User, pg.Password), Host: pg.Addr(), Path: "/" + pg.Database}
	root := t.TempDir()
	for _, b := range []registry.Binding{
		{
			Name: "db", Provider: "orders-pg", Type: "postgresql",
			Endpoints: []registry.Endpoint{{URL: pgURL.String(), Ready: true}},
			Config:    map[string]string{"sslmode": "disable"},
		},
		{
			Name: "cache", Provider: "cache-redis", Type: "redis",
			Endpoints: []registry.Endpoint{{URL: "redis://" + rd.Addr, Ready: true}},
			Secret:    map[string]string{"password": "redis-pw"},
		},
	} {
		if err := writeBinding(root, &b); err != nil {
			t.Fatalf("writeBinding(%s) = %v", b.Name, err)
		}
	}
	if typ, _ := os.ReadFile(filepath.Join(root, "db", "type")); string(typ) != "postgresql" {
		t.Errorf("db/type = %q, want postgresql", typ)
	}

	t.Run("postgresql with pg", func(t *testing.T) {
		m := getBinding(t, mods, only(t, root, "db"), "POSTGRESQL", "pg")
		t.Logf("pg config: host=%v port=%v database=%v user=%v", m["host"], m["port"], m["database"], m["user"])
		// Connect with exactly what the library produced.
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%v port=%v dbname=%v user=%v password=%v sslmode=disable",
			m["host"], m["port"], m["database"], m["user"], m["password"]))
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("connect with kube-service-bindings' pg config: %v", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var user string
		if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "app" {
			t.Errorf("current_user = %q, %v; want app", user, err)
		}
	})

	t.Run("redis with redis", func(t *testing.T) {
		m := getBinding(t, mods, only(t, root, "cache"), "REDIS", "redis")
		sock, _ := m["socket"].(map[string]any)
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%v:%v", sock["host"], sock["port"]), Password: fmt.Sprint(m["password"])})
		defer c.Close()
		if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET with kube-service-bindings' redis config %v: %v", sock, err)
		}
	})

	t.Run("redis with ioredis", func(t *testing.T) {
		m := getBinding(t, mods, only(t, root, "cache"), "REDIS", "ioredis")
		if m["host"] != "127.0.0.1" || m["port"] != fmt.Sprint(rd.Port) || m["password"] != "redis-pw" {
			t.Errorf("ioredis config = %v, want host 127.0.0.1, port %d and the password", m, rd.Port)
		}
	})

	t.Run("whole root, first matching type", func(t *testing.T) {
		// With several bindings in one root the library only finds a type
		// that sorts first ("cache" before "db"): REDIS works here.
		m := getBinding(t, mods, root, "REDIS", "ioredis")
		if m["host"] != "127.0.0.1" {
			t.Errorf("REDIS from the whole root = %v", m)
		}
	})
}

// TestBindingFilesExample runs examples/binding-files (Python, standard
// library only, no ddi code) against the files the sidecar writes for a
// real Redis.
func TestBindingFilesExample(t *testing.T) {
	python := testservers.Need(t, "python3", "python3")
	rd := testservers.StartRedis(t, "redis-pw")
	root := t.TempDir()
	if err := writeBinding(root, &registry.Binding{
		Name: "cache", Provider: "cache-redis", Type: "redis",
		Endpoints: []registry.Endpoint{{URL: "redis://" + rd.Addr, Ready: true}},
		Secret:    map[string]string{"password": "redis-pw"},
	}); err != nil {
		t.Fatalf("writeBinding() = %v", err)
	}
	script := filepath.Join(repoRoot(t), "examples", "binding-files", "visits.py")
	for want := 1; want <= 2; want++ {
		cmd := exec.Command(python, script)
		cmd.Env = append(os.Environ(), "SERVICE_BINDING_ROOT="+root)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		if !strings.Contains(string(out), fmt.Sprintf("visits: %d", want)) {
			t.Errorf("run %d printed %q, want visits: %d", want, out, want)
		}
		if strings.Contains(string(out), "redis-pw") {
			t.Errorf("the example printed the password: %q", out)
		}
	}
}
