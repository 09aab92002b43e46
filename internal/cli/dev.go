package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/registry/bolt"
)

func newDevCmd(g *globals) *cobra.Command {
	var (
		dataDir     string
		listen      string
		allowRemote bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local control plane with the embedded store",
		Long: `dev runs the ddi control plane on this machine with the embedded bbolt
store. Sidecars (ddi sidecar, ddi run) connect to it for their snapshots, and
the provider commands talk to it.

The default data directory is $XDG_STATE_HOME/ddi, or ~/.local/state/ddi.
The control plane trusts every caller, so it listens on loopback only unless
--allow-remote is given. It answers only requests addressed to a loopback
name or address (or to the --listen host), refuses requests from web pages
of other sites (an Origin header) and takes JSON bodies only, so that a
page in a browser cannot reach it by DNS rebinding or a cross-site POST.`,
		Example: `  ddi dev
  ddi dev --data /tmp/ddi --listen 127.0.0.1:7470`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if dataDir == "" {
				if dataDir, err = defaultDataDir(); err != nil {
					return err
				}
			}
			if !allowRemote {
				if err := requireLoopback("--listen", listen); err != nil {
					return err
				}
			}
			cp, err := startControlPlane(cmd.Context(), dataDir, listen, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "ddi control plane listening on %s (data %s)\n", cp.URL, dataDir)
			<-cmd.Context().Done()
			return cp.Stop()
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "", "data directory of the embedded store (default $XDG_STATE_HOME/ddi)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7470", "address to listen on")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback --listen address (every caller is trusted)")
	return cmd
}

func defaultDataDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "ddi"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the default data directory: %w (set --data)", err)
	}
	return filepath.Join(home, ".local", "state", "ddi"), nil
}

func requireLoopback(flag, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: write HOST:PORT, for example 127.0.0.1:7470", flag, addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s %q is not a loopback address; the local control plane trusts every caller (use --allow-remote to accept that)", flag, addr)
	}
	return nil
}

// runningControlPlane is a control plane started in this process.
type runningControlPlane struct {
	URL    string
	server *http.Server
	store  *bolt.Store
	cancel context.CancelFunc
	done   chan error
}

// startControlPlane opens the store in dataDir and serves the control plane
// on listen until Stop.
func startControlPlane(ctx context.Context, dataDir, listen string, log *slog.Logger) (*runningControlPlane, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data %s: %w", dataDir, err)
	}
	store, err := bolt.Open(filepath.Join(dataDir, "registry.db"), bolt.Options{})
	if err != nil {
		return nil, err
	}
	srv, err := controlplane.New(controlplane.Options{Store: store, Logger: log})
	if err != nil {
		store.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("--listen %s: %w", listen, err)
	}
	// The control plane trusts every caller that reaches it, so a web page
	// in a browser must not (DNS rebinding, cross-site POSTs).
	handler := httpapi.LocalOnly(srv.Handler(), httpapi.LocalOptions{Listen: listen})
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cp := &runningControlPlane{
		URL:    "http://" + ln.Addr().String(),
		server: &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: httpapi.MaxHeaderBytes},
		store:  store,
		cancel: cancel,
		done:   make(chan error, 2),
	}
	go func() { cp.done <- srv.Run(ctx) }()
	go func() {
		if err := cp.server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("control plane server failed", "err", err)
		}
	}()
	select {
	case <-srv.Ready():
	case <-time.After(10 * time.Second):
		_ = cp.Stop()
		return nil, errors.New("control plane did not become ready within 10s: the store did not list")
	}
	return cp, nil
}

// Stop ends the streams, the server and the store.
func (cp *runningControlPlane) Stop() error {
	cp.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cp.server.Shutdown(ctx)
	<-cp.done
	return cp.store.Close()
}
