package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/registry"
)

func newDemoCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch distributed dependency injection work end to end on this machine",
		Long: `demo needs nothing but this binary. It starts a control plane with an
embedded store in a temporary directory, two versions of a small HTTP
provider ("greeter") and a function ("frontend") that depends on it through
its own sidecar. It calls the function, then changes the providers live:
version 2 registers itself at run time and version 1 goes away. The
function's next call reaches version 2 with no restart. Every process and
temporary file is removed at the end.`,
		Example: "  ddi demo",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), g)
		},
	}
	cmd.AddCommand(newDemoGreeterCmd(g), newDemoFrontendCmd(g))
	return cmd
}

type demo struct {
	g      *globals
	dir    string
	exe    string
	cpURL  string
	step   int
	procs  []*demoProc
	logDir string
}

type demoProc struct {
	name string
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.g.stdout, "\n%d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.g.stdout, "   %s\n", fmt.Sprintf(format, args...))
}

func runDemo(ctx context.Context, g *globals) (err error) {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the ddi binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "ddi-demo-")
	if err != nil {
		return err
	}
	d := &demo{g: g, dir: dir, exe: exe, logDir: filepath.Join(dir, "logs")}
	if err := os.MkdirAll(d.logDir, 0o700); err != nil {
		return err
	}
	defer func() {
		d.stopAll()
		if err != nil {
			d.dumpLogs()
		}
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()
	cpLogFile, err := os.Create(filepath.Join(d.logDir, "control-plane.log"))
	if err != nil {
		return err
	}
	defer cpLogFile.Close()
	cpLog := slog.New(slog.NewTextHandler(cpLogFile, nil))

	fmt.Fprintln(g.stdout, "ddi demo: distributed dependency injection, end to end, on this machine.")

	cp, err := controlplane.StartLocal(ctx, filepath.Join(dir, "data"), "127.0.0.1:0", cpLog)
	if err != nil {
		return err
	}
	defer cp.Stop()
	d.cpURL = cp.URL
	c := &client.Client{BaseURL: cp.URL}
	d.say("Started the control plane at %s, with its embedded store in a temporary directory.", cp.URL)
	d.detail("It owns the registry of providers and streams each function's bindings to its sidecar.")

	v1, err := d.start(ctx, "greeter-v1", d.exe, "demo", "greeter", "--version", "1.0.0")
	if err != nil {
		return err
	}
	if _, _, err := c.PutProvider(ctx, registry.Provider{
		Name: "greeter-v1", Type: "http", Version: "1.0.0",
		Endpoints: []registry.Endpoint{{URL: "http://" + v1.addr, Ready: true}},
	}); err != nil {
		return fmt.Errorf("register greeter-v1: %w", err)
	}
	d.say("Started greeter version 1.0.0 at http://%s and registered it as provider greeter-v1 (type http).", v1.addr)
	d.detail("Same as: ddi provider add greeter-v1 --type http --version 1.0.0 --url http://%s", v1.addr)

	front, err := d.start(ctx, "frontend", d.exe, "--control-plane", d.cpURL, "run", "--name", "frontend",
		"--dep", "greeter=http@>=1", "--", d.exe, "demo", "frontend")
	if err != nil {
		return err
	}
	sidecarAddr, pid, _ := strings.Cut(front.addr, " ")
	front.addr = sidecarAddr
	d.say("Started the function frontend (pid %s) with `ddi run --name frontend --dep greeter=http@>=1`.", pid)
	d.detail("frontend never names a host: it declares \"a greeter, any http provider of version 1 or later\".")
	d.detail("Its sidecar resolved that to the highest ready version and serves it on loopback.")

	answer, err := demoGet(ctx, "http://"+front.addr+"/")
	if err != nil {
		return err
	}
	d.say("Called frontend. It asked its sidecar to invoke \"greeter\" and answered:")
	d.detail("%s", answer)
	if !strings.Contains(answer, "1.0.0") {
		return fmt.Errorf("expected the answer of greeter 1.0.0, got %q", answer)
	}

	binding, err := demoGet(ctx, "http://"+front.addr+"/binding")
	if err != nil {
		return err
	}
	rev := demoRevision(binding)

	v2, err := d.start(ctx, "greeter-v2", d.exe, "--control-plane", d.cpURL, "run", "--name", "greeter-v2",
		"--", d.exe, "demo", "greeter", "--version", "2.0.0", "--register", "greeter-v2")
	if err != nil {
		return err
	}
	v2Addr, _, _ := strings.Cut(v2.addr, " ")
	d.say("Started greeter version 2.0.0 at http://%s. It registered itself at run time through its own sidecar", v2Addr)
	d.detail("(PUT /v1/providers/greeter-v2 on its sidecar, under a lease the sidecar renews).")

	if err := d.waitRebind(ctx, front.addr, rev, "2.0.0"); err != nil {
		return err
	}
	d.detail("The control plane pushed a new snapshot: frontend's greeter binding now points at greeter-v2.")

	if err := c.DeleteProvider(ctx, registry.DefaultNamespace, "greeter-v1", 0); err != nil {
		return fmt.Errorf("remove greeter-v1: %w", err)
	}
	d.stop(v1)
	d.say("Removed provider greeter-v1 (ddi provider rm greeter-v1) and stopped its process.")

	answer2, err := demoGet(ctx, "http://"+front.addr+"/")
	if err != nil {
		return err
	}
	d.say("Called frontend again. Same process, no restart, new answer:")
	d.detail("%s", answer2)
	if !strings.Contains(answer2, "2.0.0") || !strings.Contains(answer2, "pid "+pid) {
		return fmt.Errorf("expected frontend (pid %s) to reach greeter 2.0.0, got %q", pid, answer2)
	}

	d.stop(v2)
	list, err := c.ListProviders(ctx, "")
	if err != nil {
		return err
	}
	d.say("Stopped greeter-v2. Its sidecar removed its registration on the way out: %d provider(s) left.", len(list.Providers))
	d.stop(front)
	d.say("Stopped frontend and the control plane, and removed every temporary file. Done.")
	fmt.Fprintln(g.stdout, "\nNext: docs/ and the README's quick start show the same with ddi dev and ddi run.")
	return nil
}

// start runs a child process that prints "listening on ADDR [EXTRA]" as
// its first stdout line, and returns once it has.
func (d *demo) start(ctx context.Context, name string, argv ...string) (*demoProc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	logf, err := os.Create(filepath.Join(d.logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), "DDI_CONTROL_PLANE="+d.cpURL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &demoProc{name: name, cmd: cmd, done: make(chan struct{})}
	d.procs = append(d.procs, p)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok {
			return nil, fmt.Errorf("%s printed %q, not its address", name, line)
		}
		p.addr = addr
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready (log in %s)", name, logf.Name())
	case <-time.After(15 * time.Second):
		return nil, fmt.Errorf("%s did not start within 15s", name)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *demo) stop(p *demoProc) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (d *demo) stopAll() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.stop(d.procs[i])
	}
}

func (d *demo) dumpLogs() {
	entries, _ := os.ReadDir(d.logDir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(d.logDir, e.Name()))
		fmt.Fprintf(d.g.stderr, "--- %s ---\n%s", e.Name(), b)
	}
}

// waitRebind long-polls frontend's binding until it names version want.
func (d *demo) waitRebind(ctx context.Context, frontAddr string, rev int64, want string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		body, err := demoGet(ctx, fmt.Sprintf("http://%s/binding?revision=%d&wait=5s", frontAddr, rev))
		if err != nil {
			return err
		}
		if strings.Contains(body, `"version":"`+want+`"`) {
			return nil
		}
		rev = demoRevision(body)
	}
	return fmt.Errorf("frontend was not rebound to greeter %s within 15s", want)
}

func demoRevision(bindingJSON string) int64 {
	_, rest, ok := strings.Cut(bindingJSON, `"revision":`)
	if !ok {
		return 0
	}
	end := strings.IndexAny(rest, ",}")
	if end < 0 {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(rest[:end]), 10, 64)
	return n
}

var demoHTTP = &http.Client{Timeout: 20 * time.Second}

func demoGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := demoHTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b)), nil
}

// newDemoGreeterCmd is the demo's provider: an HTTP server that says which
// version it is, optionally registering itself through its sidecar.
func newDemoGreeterCmd(g *globals) *cobra.Command {
	var version, register string
	cmd := &cobra.Command{
		Use:    "greeter",
		Short:  "The demo's HTTP provider",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			pid := os.Getpid()
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "hello from greeter %s (pid %d)\n", version, pid)
			}), ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(ln)
			if register != "" {
				body := fmt.Sprintf(`{"type":"http","version":%q,"endpoints":[{"url":"http://%s"}],"ttl":"10s"}`, version, ln.Addr())
				req, _ := http.NewRequestWithContext(cmd.Context(), http.MethodPut, os.Getenv("DDI_ADDR")+"/v1/providers/"+register, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := demoHTTP.Do(req)
				if err != nil {
					return fmt.Errorf("register through the sidecar at DDI_ADDR=%q: %w", os.Getenv("DDI_ADDR"), err)
				}
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					return fmt.Errorf("register through the sidecar: %s", resp.Status)
				}
			}
			fmt.Fprintf(g.stdout, "listening on %s\n", ln.Addr())
			<-cmd.Context().Done()
			return srv.Close()
		},
	}
	cmd.Flags().StringVar(&version, "version", "1.0.0", "version to report")
	cmd.Flags().StringVar(&register, "register", "", "register as this provider through the sidecar at $DDI_ADDR")
	return cmd
}

// newDemoFrontendCmd is the demo's function: it answers by invoking its
// "greeter" dependency through its sidecar.
func newDemoFrontendCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "frontend",
		Short:  "The demo's function",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			sidecar := os.Getenv("DDI_ADDR")
			if sidecar == "" {
				return errors.New("DDI_ADDR is not set: run me under ddi run")
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			pid := os.Getpid()
			mux := http.NewServeMux()
			mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
				got, err := demoGet(r.Context(), sidecar+"/v1/invoke/greeter/")
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				fmt.Fprintf(w, "frontend (pid %d) got: %s\n", pid, got)
			})
			mux.HandleFunc("GET /binding", func(w http.ResponseWriter, r *http.Request) {
				got, err := demoGet(r.Context(), sidecar+"/v1/bindings/greeter?"+r.URL.RawQuery)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				fmt.Fprintln(w, got)
			})
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(ln)
			fmt.Fprintf(g.stdout, "listening on %s %d\n", ln.Addr(), pid)
			<-cmd.Context().Done()
			return srv.Close()
		},
	}
}
