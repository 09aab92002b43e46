package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// TestResolveExplain: `ddi resolve --explain` against a real local control
// plane prints the chosen provider, the others in rank order with the rule
// that ranked them, and the rejected ones with the rule that rejected them.
func TestResolveExplain(t *testing.T) {
	cp := startTestControlPlane(t)
	for _, p := range [][]string{
		{"g1", "--type", "http", "--version", "1.2.0", "--url", "http://127.0.0.1:9001"},
		{"g2", "--type", "http", "--version", "1.4.0", "--url", "http://127.0.0.1:9002", "--label", "tier=gold"},
		{"g3", "--type", "http", "--version", "2.0.0", "--url", "http://127.0.0.1:9003"},
		{"g4", "--type", "http", "--version", "1.9.0", "--url", "http://127.0.0.1:9004", "--scope-workload", "billing"},
		{"g5", "--type", "http", "--version", "1.4.0", "--url", "http://127.0.0.1:9005", "--namespace", "shared"},
	} {
		if _, _, err := run(t, append([]string{"--control-plane", cp, "provider", "add"}, p...)...); err != nil {
			t.Fatalf("provider add %s: %v", p[0], err)
		}
	}
	// The index follows the store asynchronously: wait until the
	// explanation shows all five (the ones of default and shared/g5).
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		out, _, err = run(t, "--control-plane", cp, "resolve", "frontend", "greeter=http@^1", "--explain")
		if err != nil {
			t.Fatalf("resolve --explain = %v", err)
		}
		if strings.Contains(out, "default/g4") && strings.Contains(out, "shared/g5") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []struct{ prefix, contains string }{
		{"greeter=http@^1 for default/frontend looks in namespace default", ""},
		{"chosen: default/g2", ""},
		{"", ""},
		{"RANK", "RULE"},
		{"1*", "default/g2  1.4.0    1/1    highest-version  chosen over default/g1: version 1.4.0 is higher than 1.2.0"},
		{"2", "default/g1"},
		{"-", "shared/g5   1.4.0    1/1    namespace        in namespace shared; the selector looks only in default (write */http@^1"},
		{"-", "default/g3  2.0.0    1/1    version          version 2.0.0 is outside ^1"},
		{"-", "default/g4  1.9.0    1/1    scope            scope.workloads [billing] does not list the consumer frontend"},
	}
	if len(lines) != len(want) {
		t.Fatalf("resolve --explain printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w.prefix) || !strings.Contains(lines[i], w.contains) {
			t.Errorf("line %d = %q, want prefix %q containing %q", i, lines[i], w.prefix, w.contains)
		}
	}

	// JSON, and an unresolved dependency explained with exit status 0.
	out, _, err := run(t, "--control-plane", cp, "resolve", "frontend", "greeter=*/http@^1,tier=gold", "--explain", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var ex registry.Explanation
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatalf("resolve --explain -o json = %q: %v", out, err)
	}
	if ex.Chosen != "default/g2" || ex.Namespace != "*" || len(ex.Candidates) != 5 {
		t.Errorf("resolve --explain -o json chose %q in %q with %d candidates, want default/g2 in * with 5:\n%s", ex.Chosen, ex.Namespace, len(ex.Candidates), out)
	}
	out, _, err = run(t, "--control-plane", cp, "resolve", "frontend", "db=postgresql@^15", "--explain")
	if err != nil || !strings.Contains(out, "unresolved: no provider has type postgresql") || !strings.Contains(out, "no candidate provider") {
		t.Errorf("resolve --explain of an unresolved dependency = %q, %v", out, err)
	}
}

// TestDashboardCommand: `ddi dashboard` prints the page's address once the
// control plane serves it, opens it with --open, and says what to do when
// no control plane answers.
func TestDashboardCommand(t *testing.T) {
	cp := startTestControlPlane(t)
	out, _, err := run(t, "--control-plane", cp, "dashboard")
	if err != nil || strings.TrimSpace(out) != cp+"/dashboard/" {
		t.Errorf("dashboard = %q, %v; want %s/dashboard/", out, err, cp)
	}

	// --open runs the system's opener (xdg-open here): a stand-in on PATH
	// records the address it was given.
	bin := t.TempDir()
	got := filepath.Join(bin, "opened")
	script := "#!/bin/sh\necho \"$1\" > " + got + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if _, _, err := run(t, "--control-plane", cp, "dashboard", "--open"); err != nil {
		t.Fatalf("dashboard --open = %v", err)
	}
	if b := waitFileContent(t, got, cp+"/dashboard/\n"); b != cp+"/dashboard/\n" {
		t.Errorf("xdg-open was given %q, want %s/dashboard/", b, cp)
	}

	_, _, err = run(t, "--control-plane", "http://127.0.0.1:1", "dashboard")
	if err == nil || !strings.Contains(err.Error(), "ddi dev") {
		t.Errorf("dashboard without a control plane = %v; want an error that says how to start one", err)
	}
}

// TestVersionCommand: `ddi version` prints its own version and commit and
// the control plane's, and still answers (exit 0) without a control plane.
func TestVersionCommand(t *testing.T) {
	cp := startTestControlPlane(t)
	out, _, err := run(t, "--control-plane", cp, "version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 3 || !strings.HasPrefix(lines[1], "ddi ") || !strings.Contains(lines[1], Version) ||
		!strings.HasPrefix(lines[2], "control plane "+cp) || !strings.Contains(lines[2], Version) {
		t.Errorf("version = %q, %v; want a header, ddi's row and the control plane's, with version %s", out, err, Version)
	}
	out, _, err = run(t, "--control-plane", cp, "version", "-o", "json")
	var v struct {
		Client       struct{ Version, Commit, Go string }  `json:"client"`
		ControlPlane *struct{ Version, Commit, Go string } `json:"controlPlane"`
	}
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.ControlPlane == nil || v.ControlPlane.Version != Version ||
		v.ControlPlane.Commit == "" || v.Client.Commit != v.ControlPlane.Commit || v.Client.Go == "" {
		t.Errorf("version -o json = %q, %v", out, err)
	}
	out, _, err = run(t, "--control-plane", "http://127.0.0.1:1", "version")
	if err != nil || !strings.Contains(out, "unreachable") || !strings.Contains(out, "ddi dev") {
		t.Errorf("version without a control plane = %q, %v; want exit 0 and how to start one", out, err)
	}
}

// TestProgressOnSlowWaits: a wait longer than a second says what it waits
// for, and that it is done; a short one prints nothing.
func TestProgressOnSlowWaits(t *testing.T) {
	cp := startTestControlPlane(t)
	_, stderr, err := run(t, "--control-plane", cp, "dashboard")
	if err != nil || stderr != "" {
		t.Errorf("a fast dashboard check printed %q, %v; want nothing on stderr", stderr, err)
	}
	// A control plane that takes 1.5 s to answer (a real listener whose
	// first request is slow, as a starting control plane is).
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(slow.Close)
	_, stderr, err = run(t, "--control-plane", slow.URL, "dashboard")
	want := "connecting to the control plane at " + slow.URL + "...\nconnecting to the control plane at " + slow.URL + ": done\n"
	if err != nil || stderr != want {
		t.Errorf("a slow dashboard check printed %q, %v; want %q", stderr, err, want)
	}
}
