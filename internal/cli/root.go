package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/client"
)

// DefaultControlPlane is the control plane address used when neither
// --control-plane nor DDI_CONTROL_PLANE is set.
const DefaultControlPlane = "http://127.0.0.1:7470"

// ExitError makes ddi exit with Code without printing anything more (the
// exit status of the command `ddi run` started, for example).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// globals are the flags every command shares.
type globals struct {
	controlPlane string
	logLevel     string
	stdout       io.Writer
	stderr       io.Writer
}

// Run executes the ddi command line with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "ddi",
		Short: "Distributed dependency injection for serverless functions",
		Long: `ddi hands a function the dependencies it declares (a database, a cache,
another function) through a sidecar beside it, and keeps them current as
providers move, scale, rotate credentials or fail.

The control plane address comes from, in order: the --control-plane flag,
the DDI_CONTROL_PLANE environment variable, then ` + DefaultControlPlane + `.`,
		Example: `  ddi demo                      # watch it work end to end
  ddi dev                       # run a local control plane
  ddi provider add greeter --type http --url http://127.0.0.1:9001 --version 1.0.0
  ddi run --name frontend --dep greeter=http@^1 -- ./frontend`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.controlPlane, "control-plane", "", "control plane URL (default $DDI_CONTROL_PLANE, else "+DefaultControlPlane+")")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error ($DDI_LOG_LEVEL)")
	root.PersistentPreRun = func(cmd *cobra.Command, args []string) {
		envDefault(cmd.Root().PersistentFlags(), "log-level", "DDI_LOG_LEVEL")
	}
	root.AddCommand(
		newDevCmd(g),
		newProviderCmd(g),
		newResolveCmd(g),
		newStatusCmd(g),
		newDashboardCmd(g),
		newSidecarCmd(g),
		newRunCmd(g),
		newDemoCmd(g),
		newVersionCmd(g),
		newProbeCmd(g),
	)
	root.AddCommand(kubeCommands(g)...)
	return root
}

// controlPlaneURL applies the documented precedence.
func (g *globals) controlPlaneURL() string {
	if g.controlPlane != "" {
		return strings.TrimRight(g.controlPlane, "/")
	}
	if v := os.Getenv("DDI_CONTROL_PLANE"); v != "" {
		return strings.TrimRight(v, "/")
	}
	return DefaultControlPlane
}

func (g *globals) client() *client.Client {
	return &client.Client{BaseURL: g.controlPlaneURL()}
}

func (g *globals) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// Version is the ddi version, set at build time with -ldflags.
var Version = "v0.1.0-dev"

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the ddi version",
		Example: "  ddi version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(g.stdout, Version)
			return nil
		},
	}
}
