package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ddiBinary builds cmd/ddi once per test binary.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func ddiBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ddi-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ddi")
		out, err := exec.Command("go", "build", "-o", binPath, "ddi.dev/ddi/cmd/ddi").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a child process whose output goes to the test log on failure.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	// first receives the first stdout line.
	first chan string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(ddiBinary(t), args...)
	p := &proc{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{}), first: make(chan string, 1)}
	cmd.Stderr = p.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				p.first <- sc.Text()
				first = false
			}
			fmt.Fprintln(p.out, "stdout:", sc.Text())
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *proc) signal(s syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(s)
	}
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die after SIGKILL", p.name)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := tryGet(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code, body
}

func tryGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitFor polls cond every 50ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

type binding struct {
	Name      string `json:"name"`
	Provider  string `json:"provider"`
	Version   string `json:"version"`
	Revision  int64  `json:"revision"`
	Endpoints []struct {
		URL string `json:"url"`
	} `json:"endpoints"`
}

func getBinding(t *testing.T, sidecar, name, query string) (int, binding) {
	t.Helper()
	code, body := get(t, "http://"+sidecar+"/v1/bindings/"+name+query)
	var b binding
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			t.Fatalf("binding %s: %v in %s", name, err, body)
		}
	}
	return code, b
}

// TestLocalEndToEnd runs a control plane, a provider that registers itself
// at run time through its sidecar, and a consumer; it kills the control
// plane with SIGKILL, checks that the consumer's sidecar keeps resolving and
// invoking from its snapshot, restarts the control plane, and checks that a
// new registration reaches the consumer.
func TestLocalEndToEnd(t *testing.T) {
	bin := ddiBinary(t)
	data := t.TempDir()
	cpAddr := freeAddr(t)
	cpURL := "http://" + cpAddr
	cp := start(t, "control-plane", "dev", "--data", data, "--listen", cpAddr)
	waitFor(t, 10*time.Second, "control plane ready", func() bool {
		resp, err := http.Get(cpURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// The provider registers itself as "echo" (http 1.0.0) through its own sidecar.
	start(t, "provider-echo", "--control-plane", cpURL, "run", "--name", "echo", "--",
		bin, "demo", "greeter", "--version", "1.0.0", "--register", "echo")

	consumerSidecar := freeAddr(t)
	bindings := t.TempDir()
	consumer := start(t, "consumer", "--control-plane", cpURL, "run", "--name", "client",
		"--sidecar-listen", consumerSidecar, "--binding-root", bindings,
		"--dep", "echo=echo", "--dep", "latest=http@*", "--", "sleep", "600")
	_ = consumer

	waitFor(t, 15*time.Second, "consumer bound to echo", func() bool {
		code, _, err := tryGet("http://" + consumerSidecar + "/v1/bindings/echo")
		return err == nil && code == http.StatusOK
	})
	code, body := get(t, "http://"+consumerSidecar+"/v1/invoke/echo/")
	if code != http.StatusOK || !strings.Contains(body, "hello from greeter 1.0.0") {
		t.Fatalf("invoke echo = %d %q, want 200 with greeter 1.0.0", code, body)
	}
	// The sidecar writes the binding files after it applies a snapshot,
	// which its API already serves: wait for them.
	var uri []byte
	var err error
	waitFor(t, 10*time.Second, "binding file echo/uri", func() bool {
		uri, err = os.ReadFile(filepath.Join(bindings, "echo", "uri"))
		return err == nil
	})
	if !strings.HasPrefix(string(uri), "http://127.0.0.1:") {
		t.Fatalf("binding file echo/uri = %q; want the provider's URL", uri)
	}
	_, latest := getBinding(t, consumerSidecar, "latest", "")
	if latest.Provider != "echo" {
		t.Fatalf("latest bound to %q, want echo", latest.Provider)
	}

	// SIGKILL the control plane: the sidecar serves its last snapshot.
	cp.kill(t)
	waitFor(t, 10*time.Second, "sidecar to notice the control plane is gone", func() bool {
		_, body := get(t, "http://"+consumerSidecar+"/readyz")
		return strings.Contains(body, `"connected":false`)
	})
	for i := 0; i < 20; i++ {
		if code, _ := getBinding(t, consumerSidecar, "echo", ""); code != http.StatusOK {
			t.Fatalf("resolve %d with the control plane dead = %d, want 200", i, code)
		}
		if code, body := get(t, "http://"+consumerSidecar+"/v1/invoke/echo/"); code != http.StatusOK || !strings.Contains(body, "1.0.0") {
			t.Fatalf("invoke %d with the control plane dead = %d %q, want 200", i, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := get(t, "http://"+consumerSidecar+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz with the control plane dead = %d, want 200 (last snapshot still served)", code)
	}

	// Restart it on the same data and address; a new registration reaches the consumer.
	start(t, "control-plane-2", "dev", "--data", data, "--listen", cpAddr)
	waitFor(t, 15*time.Second, "sidecar reconnected", func() bool {
		_, body, err := tryGet("http://" + consumerSidecar + "/readyz")
		return err == nil && strings.Contains(body, `"connected":true`)
	})
	start(t, "provider-echo2", "--control-plane", cpURL, "run", "--name", "echo2", "--",
		bin, "demo", "greeter", "--version", "2.0.0", "--register", "echo2")
	_, after := getBinding(t, consumerSidecar, "latest", fmt.Sprintf("?revision=%d&wait=20s", latest.Revision))
	if after.Provider != "echo2" || after.Version != "2.0.0" || after.Revision <= latest.Revision {
		t.Fatalf("latest after a new registration = %+v, want provider echo2 at 2.0.0 with revision > %d", after, latest.Revision)
	}
	code, body = get(t, "http://"+consumerSidecar+"/v1/invoke/latest/")
	if code != http.StatusOK || !strings.Contains(body, "hello from greeter 2.0.0") {
		t.Fatalf("invoke latest = %d %q, want greeter 2.0.0", code, body)
	}
}
