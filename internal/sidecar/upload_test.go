package sidecar

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"ddi.dev/ddi/internal/registry"
)

// childEnv, when set to a control plane URL, makes the test binary a bare
// sidecar process (TestMain): the upload test measures that process's
// memory alone, without the client and the provider beside it.
const childEnv = "DDI_TEST_SIDECAR_CONTROL_PLANE"

func TestMain(m *testing.M) {
	if cp := os.Getenv(childEnv); cp != "" {
		os.Exit(runChildSidecar(cp))
	}
	os.Exit(m.Run())
}

// runChildSidecar serves a sidecar for fn with the dependency greeter,
// prints its address, and stops on SIGTERM.
func runChildSidecar(cp string) int {
	s, err := New(Config{Listen: "127.0.0.1:0", ControlPlane: cp, SidecarID: "sc-child",
		Consumer:     registry.Consumer{Namespace: "team", Name: "fn"},
		Dependencies: []registry.Dependency{mustDep("greeter=greeter")}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// zeros is an endless reader of zero bytes that allocates nothing.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestRelayUploadStreams sends 1 GiB through a sidecar running in its own
// process and checks the process's peak resident memory (VmHWM): the
// body is streamed, never held whole.
func TestRelayUploadStreams(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Fatalf("this test reads /proc/PID/status: %v", err)
	}
	const size = 1 << 30
	var got atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		got.Store(n)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
		}
		fmt.Fprintf(w, "%d", n)
	}))
	t.Cleanup(be.Close)
	f := newFakeCP(t)

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+f.srv.URL)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the sidecar process printed no address: %v", err)
	}
	url := "http://" + strings.TrimSpace(addr)
	f.nextHello(t)
	f.push(t, 1, []registry.Binding{greeterBinding(be.URL)}, nil)

	for _, tt := range []struct {
		name    string
		chunked bool
	}{{name: "Content-Length"}, {name: "chunked", chunked: true}} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", url+"/v1/invoke/greeter/upload", io.LimitReader(zeros{}, size))
			req.ContentLength = size
			if tt.chunked {
				req.ContentLength = -1
			}
			req.Header.Set("Ddi-Timeout", "5m")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != strconv.Itoa(size) || got.Load() != size {
				t.Fatalf("upload = %d %q, provider got %d bytes, want 200 and %d", resp.StatusCode, body, got.Load(), size)
			}
			peak := peakRSS(t, cmd.Process.Pid)
			t.Logf("sidecar peak RSS after a %d MiB upload: %.1f MiB", size>>20, float64(peak)/(1<<20))
			if peak >= uploadRSSLimit {
				t.Errorf("sidecar peak RSS = %d MiB, want under %d MiB", peak>>20, uploadRSSLimit>>20)
			}
		})
	}
}

// peakRSS returns VmHWM of process pid in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}
