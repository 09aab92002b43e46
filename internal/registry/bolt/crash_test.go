package bolt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/bolt"
)

// Environment of the child process of TestSIGKILL.
const (
	childStoreEnv = "DDI_BOLT_CRASH_STORE" // store path; set only in the child
	childStartEnv = "DDI_BOLT_CRASH_START" // index of the first provider to write
)

// crashProvider is the i-th provider the child writes. Its config value is
// large enough that a commit spans several pages.
func crashProvider(i int) registry.Provider {
	name := fmt.Sprintf("p%06d", i)
	return registry.Provider{
		Namespace: registry.DefaultNamespace,
		Name:      name,
		Type:      "http",
		Version:   fmt.Sprintf("1.%d.0", i),
		Labels:    map[string]string{"index": strconv.Itoa(i)},
		Endpoints: []registry.Endpoint{{URL: "http://" + name + ":8080", Ready: true}},
		Config:    map[string]string{"blob": strings.Repeat(strconv.Itoa(i%10), 3000)},
	}
}

// runCrashChild writes providers until it is killed, printing
// "written INDEX REVISION" after each commit.
func runCrashChild(path string) {
	start, err := strconv.Atoi(os.Getenv(childStartEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	for i := start; ; i++ {
		p, err := s.Create(context.Background(), crashProvider(i))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		fmt.Printf("written %d %d\n", i, p.Revision)
	}
}

// TestSIGKILL runs a child process that writes to a store, kills it with
// SIGKILL in the middle of its writes, and checks that the store opens
// cleanly with every write the child reported, intact, and that revisions
// never go back. It does so over several rounds on the same file.
func TestSIGKILL(t *testing.T) {
	if path := os.Getenv(childStoreEnv); path != "" {
		runCrashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	path := tempPath(t)
	var (
		next    int   // index of the next provider to write
		lastRev int64 // highest revision seen so far
	)
	for round := range 3 {
		killAfter := 20 + rand.IntN(200)
		written, maxRev := runAndKill(t, path, next, killAfter)
		if len(written) < killAfter {
			t.Fatalf("round %d: child reported %d writes, want at least %d before the kill", round, len(written), killAfter)
		}
		if written[0].rev <= lastRev {
			t.Errorf("round %d: first write at revision %d, want > %d (the last round's)", round, written[0].rev, lastRev)
		}

		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatalf("round %d: Open() after SIGKILL error = %v, want nil", round, err)
		}
		list, rev, err := s.List(t.Context())
		if err != nil {
			t.Fatalf("round %d: List() after SIGKILL error = %v, want nil", round, err)
		}
		if rev < maxRev {
			t.Errorf("round %d: List() revision = %d after SIGKILL, want >= %d (the last reported commit)", round, rev, maxRev)
		}
		byName := map[string]registry.Provider{}
		for _, p := range list {
			byName[p.Name] = p
		}
		for _, w := range written {
			want := crashProvider(w.index)
			want.Revision = w.rev
			got, ok := byName[want.Name]
			if !ok {
				t.Errorf("round %d: provider %s (reported written at revision %d) is missing after SIGKILL", round, want.Name, w.rev)
				continue
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round %d: provider %s after SIGKILL mismatch (-want +got):\n%s", round, want.Name, diff)
			}
		}
		// At most the one commit in flight at the kill may be there
		// without a report; it must be intact too.
		extra := len(list) - (next + len(written))
		if extra < 0 || extra > 1 {
			t.Errorf("round %d: store holds %d providers, want %d or %d", round, len(list), next+len(written), next+len(written)+1)
		}
		for _, p := range list {
			var i int
			if _, err := fmt.Sscanf(p.Name, "p%06d", &i); err != nil {
				t.Errorf("round %d: unexpected provider %s", round, p.Key())
				continue
			}
			want := crashProvider(i)
			if diff := cmp.Diff(want, p, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(registry.Provider{}, "Revision")); diff != "" {
				t.Errorf("round %d: provider %s is damaged (-want +got):\n%s", round, p.Name, diff)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: Close() error = %v", round, err)
		}
		next = len(list)
		lastRev = rev
		if t.Failed() {
			return
		}
	}
}

type written struct {
	index int
	rev   int64
}

// runAndKill starts the child writing providers from index start, kills
// it after it has reported killAfter writes, and returns every write it
// reported, with the highest revision among them.
func runAndKill(t *testing.T, path string, start, killAfter int) ([]written, int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILL$", "-test.count=1")
	cmd.Env = append(os.Environ(), childStoreEnv+"="+path, childStartEnv+"="+strconv.Itoa(start))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	var (
		ws     []written
		maxRev int64
	)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var w written
		if _, err := fmt.Sscanf(sc.Text(), "written %d %d", &w.index, &w.rev); err != nil {
			continue // test framework output
		}
		if want := start + len(ws); w.index != want {
			t.Fatalf("child reported index %d, want %d", w.index, want)
		}
		ws = append(ws, w)
		maxRev = max(maxRev, w.rev)
		if len(ws) == killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
	}
	// Lines printed before the kill are still read above: they were
	// reported, so they must have been committed.
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before the kill: %v\n%s", err, stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL\n%s", err, stderr.String())
	}
	return ws, maxRev
}
