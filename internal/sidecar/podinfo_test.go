package sidecar

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// writePodInfo replaces a downward-API file the way the kubelet does: a new
// file renamed over the old one.
func writePodInfo(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// TestPodInfoChangeReconnects relabels the pod (as Fission's pool manager
// does when it specialises a pool pod): the sidecar must open a new
// stream at once, keep serving its snapshot meanwhile, and not reconnect
// while nothing changes.
func TestPodInfoChangeReconnects(t *testing.T) {
	dir := t.TempDir()
	writePodInfo(t, dir, "labels", `environmentName="go"`+"\n"+`executorType="poolmgr"`)
	writePodInfo(t, dir, "annotations", `ddi.dev/inject="true"`)
	f := newFakeCP(t)
	cfg := testConfig(f)
	cfg.PodInfoDir = dir
	cfg.PodInfoInterval = 10 * time.Millisecond
	cfg.ReconnectMin, cfg.ReconnectMax = time.Second, 2*time.Second // a backoff would show
	ts := startSidecar(t, cfg)
	f.nextHello(t)
	f.push(t, 3, []registry.Binding{greeterBinding("http://127.0.0.1:9")}, nil)

	select {
	case h := <-f.hellos:
		t.Fatalf("reconnected without a change: %+v", h)
	case <-time.After(100 * time.Millisecond):
	}

	writePodInfo(t, dir, "labels", `environmentName="go"`+"\n"+`executorType="poolmgr"`+"\n"+`functionName="hello"`)
	start := time.Now()
	h := f.nextHello(t)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("reconnected %s after the label change, want at once (no backoff)", d)
	}
	if h.ResumeVersion != 3 {
		t.Errorf("resume version after the label change = %d, want 3 (the acked snapshot)", h.ResumeVersion)
	}
	if status, body, _ := do(t, "GET", ts.url+"/v1/bindings/greeter", ""); status != 200 {
		t.Errorf("GET greeter while reconnecting = %d %s, want the last snapshot", status, body)
	}

	// The new stream watches the new content: an annotation change counts too.
	writePodInfo(t, dir, "annotations", `ddi.dev/dependencies="greeter=greeter"`)
	f.nextHello(t)
}

func TestReadPodInfoWithoutDir(t *testing.T) {
	if got := readPodInfo(""); got != nil {
		t.Errorf("readPodInfo(\"\") = %q, want nil", got)
	}
	// Missing files read as empty, so a folder that appears later counts
	// as a change.
	dir := t.TempDir()
	before := readPodInfo(dir)
	writePodInfo(t, dir, "labels", `a="b"`)
	if string(before) == string(readPodInfo(dir)) {
		t.Error("readPodInfo did not change when labels appeared")
	}
}
