package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/sidecar"
)

func newRunCmd(g *globals) *cobra.Command {
	var (
		name, namespace, listen, bindingRoot string
		deps                                 []string
		readyTimeout                         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run --name FN [--dep ALIAS=SELECTOR]... -- COMMAND [ARG]...",
		Short: "Run a command as a function with its own ddi sidecar",
		Long: `run starts a sidecar for function FN, waits until it holds its first
snapshot from the control plane, then runs COMMAND with these variables in
its environment:

  DDI_ADDR              the sidecar's base URL, e.g. http://127.0.0.1:41234
  SERVICE_BINDING_ROOT  the directory of the Service Binding files
  DDI_NAME              the function name

Signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) are forwarded to
COMMAND. When COMMAND exits, the sidecar removes the providers it registered
and stops, and ddi exits with COMMAND's exit status (128+N if a signal N
ended it).

SELECTOR is a provider name (greeter), NAMESPACE/NAME, or a type with a
version range and optional labels: TYPE@RANGE[,KEY=VALUE...], for example
postgresql@^15,tier=gold or http@*. A weighted traffic split lists
targets as WEIGHT%SELECTOR separated by commas, weights adding up to 100:
greeter=90%greeter-v1,10%greeter-v2 sends one invocation in ten to
greeter-v2 and binds the files to greeter-v1. See docs/resolution.md.

By default the sidecar listens on a free loopback port, the binding files
go to a temporary directory that is removed at exit, and the sidecar logs
only warnings (set --log-level to see more).`,
		Example: `  ddi run --name frontend --dep greeter=http@^1 -- ./frontend
  ddi run --name orders --dep db=postgresql@^15 --dep cache=redis@* -- go run ./examples/orders`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 {
				return fmt.Errorf("put the command after --, as in: ddi run --name fn -- ./fn")
			}
			if err := registry.ValidateName("--name", name); err != nil {
				return err
			}
			parsed, err := parseDepFlags(deps)
			if err != nil {
				return err
			}
			// The sidecar shares the terminal with the command: it reports
			// only warnings unless --log-level asks for more.
			if !cmd.Flags().Changed("log-level") {
				g.logLevel = "warn"
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			tuneGC()
			if bindingRoot == "" {
				dir, err := os.MkdirTemp("", "ddi-bindings-"+name+"-")
				if err != nil {
					return fmt.Errorf("create binding directory: %w", err)
				}
				defer os.RemoveAll(dir)
				bindingRoot = dir
			}
			cfg := sidecar.Config{
				Listen:       listen,
				ControlPlane: g.controlPlaneURL(),
				Consumer:     registry.Consumer{Namespace: namespace, Name: name},
				Dependencies: parsed,
				BindingRoot:  bindingRoot,
			}
			sc, err := sidecar.New(cfg, log.With("function", name))
			if err != nil {
				return err
			}
			// The sidecar outlives a signal to ddi: the signal goes to the
			// command, and the sidecar stops only after the command exits.
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--sidecar-listen %s: %w", listen, err)
			}
			addr := ln.Addr().String()
			scCtx, stopSidecar := context.WithCancel(context.WithoutCancel(cmd.Context()))
			scDone := make(chan error, 1)
			go func() { scDone <- sc.Serve(scCtx, ln) }()
			stop := func() error {
				stopSidecar()
				return <-scDone
			}
			stopProgress := progress(cmd.ErrOrStderr(), "waiting for the sidecar's first snapshot from the control plane at "+cfg.ControlPlane)
			err = waitReady(cmd.Context(), "http://"+addr+"/readyz", readyTimeout, scDone)
			stopProgress()
			if err != nil {
				if errors.Is(err, errSidecarExited) {
					stopSidecar()
					return err
				}
				log.Warn("no snapshot from the control plane yet; starting the command anyway (bindings arrive when it answers)",
					"control_plane", cfg.ControlPlane, "waited", readyTimeout)
			}
			code, err := runChild(args, []string{
				"DDI_ADDR=http://" + addr,
				"SERVICE_BINDING_ROOT=" + bindingRoot,
				"DDI_NAME=" + name,
			})
			if serr := stop(); serr != nil && !errors.Is(serr, context.Canceled) {
				log.Warn("sidecar stopped with an error", "err", serr)
			}
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "function (consumer) name, a DNS-1123 label (required)")
	f.StringVar(&namespace, "namespace", registry.DefaultNamespace, "namespace of the function")
	f.StringArrayVar(&deps, "dep", nil, "dependency ALIAS=SELECTOR, or ALIAS=W%SELECTOR,... for a weighted split; repeatable")
	f.StringVar(&listen, "sidecar-listen", "127.0.0.1:0", "sidecar listen address (port 0 picks a free port)")
	f.StringVar(&bindingRoot, "binding-root", "", "directory for Service Binding files (default: a temporary directory)")
	f.DurationVar(&readyTimeout, "ready-timeout", 10*time.Second, "how long to wait for the first snapshot before starting the command anyway")
	return cmd
}

func parseDepFlags(deps []string) ([]registry.Dependency, error) {
	parsed, err := registry.ParseDependencyList(deps)
	if err != nil {
		return nil, fmt.Errorf("--dep: %w", err)
	}
	return parsed, nil
}

var errSidecarExited = errors.New("sidecar exited before it was ready")

// waitReady polls the sidecar's /readyz until it answers 200 (first
// snapshot loaded), the sidecar exits, or timeout passes.
func waitReady(ctx context.Context, url string, timeout time.Duration, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %v", errSidecarExited, err)
		case <-deadline.C:
			return errors.New("sidecar not ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// runChild runs args with extra environment, forwards signals to it, and
// returns its exit code (128+N when signal N ended it).
func runChild(args, env []string) (int, error) {
	c := exec.Command(args[0], args[1:]...)
	c.Env = append(os.Environ(), env...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", args[0], err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = c.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := c.Wait()
	close(done)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	}
	return 0, fmt.Errorf("wait for %s: %w", args[0], err)
}
