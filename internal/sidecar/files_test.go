package sidecar

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

// readBinding returns the visible files of a projected binding with their
// modes (following the symlinks, as a reader does).
func readBinding(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, de.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[de.Name()] = fi.Mode().Perm().String() + " " + string(b)
	}
	return out
}

func TestWriteBinding(t *testing.T) {
	tests := []struct {
		name    string
		binding registry.Binding
		want    map[string]string
	}{
		{
			name:    "postgres with secret keys",
			binding: dbBinding(),
			want: map[string]string{
				"type":     "-rw-r--r-- postgresql",
				"provider": "-rw-r--r-- pg",
				"host":     "-rw-r--r-- pg.team",
				"port":     "-rw-r--r-- 5432",
				"uri":      "-rw-r--r-- postgres://pg.team:5432/app",
				"database": "-rw-r--r-- app",
				"sslmode":  "-rw-r--r-- disable",
				"username": "-rw-r----- app",
				"password": "-rw-r----- " + testSecret,
			},
		},
		{
			name: "credentials in the URL are secret",
			binding: registry.Binding{Name: "cache", Provider: "redis", Type: "redis",
				Endpoints: []registry.Endpoint{{URL: "redis://:pw@10.0.0.1/0", Ready: true}}},
			want: map[string]string{
				"type":     "-rw-r--r-- redis",
				"provider": "-rw-r--r-- redis",
				"host":     "-rw-r--r-- 10.0.0.1",
				"port":     "-rw-r--r-- 6379",
				"uri":      "-rw-r----- redis://:pw@10.0.0.1/0",
				"password": "-rw-r----- pw",
				"database": "-rw-r--r-- 0",
			},
		},
		{
			name: "config cannot override type or provider; the first ready endpoint wins",
			binding: registry.Binding{Name: "greeter", Provider: "g", Type: "http",
				Endpoints: []registry.Endpoint{{URL: "http://down:1", Ready: false}, {URL: "https://api.example/v1", Ready: true}},
				Config:    map[string]string{"type": "evil", "provider": "evil", "host": "override"}},
			want: map[string]string{
				"type":     "-rw-r--r-- http",
				"provider": "-rw-r--r-- g",
				"host":     "-rw-r--r-- override",
				"port":     "-rw-r--r-- 443",
				"uri":      "-rw-r--r-- https://api.example/v1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := writeBinding(root, &tt.binding); err != nil {
				t.Fatalf("writeBinding() = %v", err)
			}
			if diff := cmp.Diff(tt.want, readBinding(t, filepath.Join(root, tt.binding.Name))); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteBindingReplacesAtomically(t *testing.T) {
	root := t.TempDir()
	b := dbBinding()
	if err := writeBinding(root, &b); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "db")
	before, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil {
		t.Fatalf("..data is not a symlink: %v", err)
	}
	// A reader holding the old password file keeps reading the old content.
	old, err := os.Open(filepath.Join(dir, "password"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	b.Secret = map[string]string{"password": "rotated"} // username goes away
	b.Config = nil
	time.Sleep(time.Millisecond)
	if err := writeBinding(root, &b); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Readlink(filepath.Join(dir, dataLink))
	if before == after {
		t.Errorf("..data still points at %s, want a new version directory", before)
	}
	got := readBinding(t, dir)
	if got["password"] != "-rw-r----- rotated" {
		t.Errorf("password = %q, want the rotated one", got["password"])
	}
	for _, gone := range []string{"username", "sslmode"} {
		if _, ok := got[gone]; ok {
			t.Errorf("%s still projected after it left the binding", gone)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, before)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old version %s still exists (err %v)", before, err)
	}
	buf := make([]byte, 64)
	n, _ := old.Read(buf)
	if string(buf[:n]) != testSecret {
		t.Errorf("open handle on the old file reads %q, want the old content", buf[:n])
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), versionPref) {
			names = append(names, e.Name())
		}
	}
	if len(names) != 1 {
		t.Errorf("version directories = %q, want exactly one", names)
	}
}

func TestWriteBindingRefuses(t *testing.T) {
	tests := []struct {
		name    string
		binding registry.Binding
		setup   func(t *testing.T, root string)
	}{
		{name: "name escaping the root", binding: registry.Binding{Name: "../escape", Type: "http"}},
		{name: "dot name", binding: registry.Binding{Name: "..", Type: "http"}},
		{name: "config key escaping the directory", binding: registry.Binding{Name: "ok", Type: "http", Config: map[string]string{"../../etc/passwd": "x"}}},
		{name: "secret key with a slash", binding: registry.Binding{Name: "ok", Type: "http", Secret: map[string]string{"a/b": "x"}}},
		{name: "hidden key", binding: registry.Binding{Name: "ok", Type: "http", Config: map[string]string{"..data": "x"}}},
		{
			name:    "directory not created by ddi",
			binding: registry.Binding{Name: "mine", Type: "http"},
			setup: func(t *testing.T, root string) {
				if err := os.MkdirAll(filepath.Join(root, "mine"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "mine", "type"), []byte("theirs"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(t, root)
			}
			err := writeBinding(root, &tt.binding)
			var refused *refusedError
			if !errors.As(err, &refused) {
				t.Fatalf("writeBinding() = %v, want a refusal", err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 1 {
				t.Errorf("something was written beside the root: %v", entries)
			}
			if tt.setup != nil {
				if b, _ := os.ReadFile(filepath.Join(root, "mine", "type")); string(b) != "theirs" {
					t.Errorf("foreign file now reads %q, want it untouched", b)
				}
				if err := removeBinding(root, "mine"); !errors.As(err, &refused) {
					t.Errorf("removeBinding() = %v, want a refusal", err)
				}
				if _, err := os.Stat(filepath.Join(root, "mine", "type")); err != nil {
					t.Errorf("foreign directory removed: %v", err)
				}
			} else if entries, _ := os.ReadDir(root); len(entries) != 0 && tt.binding.Name != "ok" {
				t.Errorf("root holds %v, want nothing", entries)
			}
		})
	}
}

func TestProjection(t *testing.T) {
	f := newFakeCP(t)
	root := t.TempDir()
	// Left by an earlier run (marker) and by someone else (no marker).
	for _, d := range []string{"stale", "foreign"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "stale", markerFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "unrelated.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(f)
	cfg.BindingRoot = root
	ts := startConnected(t, f, cfg, []registry.Binding{dbBinding(), greeterBinding("http://127.0.0.1:9")}, nil)

	waitFor(t, "binding directories", func() bool {
		return exists(filepath.Join(root, "db", "password")) && exists(filepath.Join(root, "greeter", "uri")) && !exists(filepath.Join(root, "stale"))
	})
	if got := readBinding(t, filepath.Join(root, "greeter"))["uri"]; got != "-rw-r--r-- http://127.0.0.1:9" {
		t.Errorf("greeter uri = %q", got)
	}

	g := greeterBinding("http://127.0.0.1:10")
	g.Revision = 2
	f.push(t, 2, []registry.Binding{g}, []registry.Unresolved{{Name: "db", Selector: "postgresql@^15", Reason: "gone"}})
	waitFor(t, "db removed and greeter updated", func() bool {
		b, _ := os.ReadFile(filepath.Join(root, "greeter", "uri"))
		return !exists(filepath.Join(root, "db")) && string(b) == "http://127.0.0.1:10"
	})
	for _, p := range []string{"foreign", "unrelated.txt"} {
		if !exists(filepath.Join(root, p)) {
			t.Errorf("%s was removed, want it left alone", p)
		}
	}

	// Shutdown removes nothing.
	ts.stop()
	if !exists(filepath.Join(root, "greeter", "uri")) {
		t.Error("binding files removed at shutdown, want them kept")
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAckWaitsForFiles checks that a snapshot is acknowledged only after its
// binding files are written, and rejected (NACK) when they cannot be.
func TestAckWaitsForFiles(t *testing.T) {
	f := newFakeCP(t)
	root := t.TempDir()
	cfg := testConfig(f)
	cfg.BindingRoot = root
	startSidecar(t, cfg)
	f.nextHello(t)
	ack := f.push(t, 1, []registry.Binding{greeterBinding("http://127.0.0.1:9")}, nil)
	if ack.Error != "" {
		t.Fatalf("ack of a writable snapshot carries error %q", ack.Error)
	}
	// The ack came after the files: no waiting needed.
	if !exists(filepath.Join(root, "greeter", "uri")) {
		t.Fatal("the snapshot was acknowledged before its binding files were written")
	}

	// A file where the next binding's directory must go makes it unwritable.
	if err := os.WriteFile(filepath.Join(root, "db"), []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	nack := f.push(t, 2, []registry.Binding{greeterBinding("http://127.0.0.1:9"), dbBinding()}, nil)
	if nack.Version != 2 || !strings.Contains(nack.Error, "db") {
		t.Fatalf("ack of an unwritable snapshot = %+v, want a NACK of version 2 naming binding db", nack)
	}
	if strings.Contains(nack.Error, "hunter2") || strings.Contains(nack.Error, dbBinding().Secret["password"]) {
		t.Errorf("NACK leaks the secret: %q", nack.Error)
	}
}

// TestSecretFilesTakeTheRootsGroup checks that secret files belong to the
// group of the binding root (the pod's fsGroup on Kubernetes), readable by
// that group and by no one else, and that other files stay readable.
func TestSecretFilesTakeTheRootsGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the binding root a group the test process is not in by default")
	}
	root := t.TempDir()
	const fsGroup = 4321
	if err := os.Chown(root, -1, fsGroup); err != nil {
		t.Fatal(err)
	}
	b := &registry.Binding{Name: "db", Provider: "db", Type: "postgresql",
		Endpoints: []registry.Endpoint{{URL: "postgresql://app@10.0.0.1:5432/orders", Ready: true}},
		Secret:    map[string]string{"password": testSecret}}
	if err := writeBinding(root, b); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		file      string
		wantMode  os.FileMode
		wantGroup bool
	}{
		{file: "password", wantMode: 0o640, wantGroup: true},
		{file: "host", wantMode: 0o644},
	} {
		fi, err := os.Stat(filepath.Join(root, "db", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tt.wantMode {
			t.Errorf("%s mode = %v, want %v", tt.file, got, tt.wantMode)
		}
		gid := int(fi.Sys().(*syscall.Stat_t).Gid)
		if tt.wantGroup && gid != fsGroup {
			t.Errorf("%s group = %d, want the binding root's %d", tt.file, gid, fsGroup)
		}
	}
}
