package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/controlplane"
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
			cp, err := controlplane.StartLocal(cmd.Context(), dataDir, listen, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "ddi control plane listening on %s (data %s)\n", cp.URL, dataDir)
			fmt.Fprintf(g.stderr, "dependency graph at %s/dashboard/ (ddi dashboard --open)\n", cp.URL)
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
