package release

import (
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func registrySh(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(filepath.Join(repo, "hack/registry.sh"), args...).Output()
	return strings.TrimSpace(string(out)), err
}

func answers(addr string) bool {
	resp, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestRegistryScript: hack/registry.sh start is idempotent per folder,
// addr names the running registry, stop is safe twice, and an address
// given to start is the one it listens on.
func TestRegistryScript(t *testing.T) {
	if out, err := exec.Command(filepath.Join(repo, "hack/registry.sh"), "build").CombinedOutput(); err != nil {
		t.Skipf("skipping: the CNCF distribution registry cannot be built from the module proxy (hack/registry.sh build): %v\n%s", err, out)
	}
	dir := t.TempDir()
	t.Cleanup(func() { registrySh(t, "stop", dir) })

	addr, err := registrySh(t, "start", dir)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, stderrOf(err))
	}
	if !answers(addr) {
		t.Fatalf("start printed %s, where GET /v2/ does not answer 200", addr)
	}
	if again, err := registrySh(t, "start", dir); err != nil || again != addr {
		t.Errorf("second start = %q, %v; want %q (the running registry)", again, err, addr)
	}
	if got, err := registrySh(t, "addr", dir); err != nil || got != addr {
		t.Errorf("addr = %q, %v; want %q", got, err, addr)
	}
	for i := range 2 {
		if _, err := registrySh(t, "stop", dir); err != nil {
			t.Fatalf("stop #%d: %v\n%s", i+1, err, stderrOf(err))
		}
	}
	if answers(addr) {
		t.Errorf("the registry on %s still answers after stop", addr)
	}
	if got, err := registrySh(t, "addr", dir); err == nil || !strings.Contains(string(stderrOf(err)), "hack/registry.sh start") {
		t.Errorf("addr after stop = %q, %v (%s); want an error that says how to start one", got, err, stderrOf(err))
	}

	// A fixed address, as a cluster's containerd configuration needs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fixed := ln.Addr().String()
	ln.Close()
	if got, err := registrySh(t, "start", dir, fixed); err != nil || got != fixed || !answers(fixed) {
		t.Errorf("start %s %s = %q, %v; want it listening there", dir, fixed, got, err)
	}
}
