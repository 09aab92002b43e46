package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/controlplane"
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

// Version is the ddi version: controlplane.Version, which the build sets
// with -ldflags (see there).
var Version = controlplane.Version

func newVersionCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit of ddi and of the control plane",
		Long: `version prints the version, commit and Go version of this ddi binary, then
those of the control plane it talks to (--control-plane, DDI_CONTROL_PLANE),
or why it cannot reach it. It exits 0 either way.`,
		Example: "  ddi version\n  ddi version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			local := controlplane.Build()
			local.Version = Version
			out := struct {
				Client       controlplane.BuildInfo `json:"client"`
				ControlPlane *client.BuildInfo      `json:"controlPlane,omitempty"`
				URL          string                 `json:"controlPlaneURL"`
				Error        string                 `json:"controlPlaneError,omitempty"`
			}{Client: local, URL: g.controlPlaneURL()}
			stop := progress(g.stderr, "asking the control plane at "+out.URL+" for its version")
			remote, err := g.client().Version(cmd.Context())
			stop()
			if err != nil {
				out.Error = err.Error()
			} else {
				out.ControlPlane = &remote
			}
			return printOut(g.stdout, output, out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "\tVERSION\tCOMMIT\tGO")
				fmt.Fprintf(tw, "ddi\t%s\t%s\t%s\n", local.Version, local.Commit, local.Go)
				if out.ControlPlane != nil {
					fmt.Fprintf(tw, "control plane %s\t%s\t%s\t%s\n", out.URL, remote.Version, remote.Commit, remote.Go)
				} else {
					fmt.Fprintf(tw, "control plane %s unreachable: %s\n(start one with `ddi dev`, or point --control-plane or DDI_CONTROL_PLANE at one)\n", out.URL, out.Error)
				}
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

// progress prints "msg..." to w when the returned stop is not called
// within a second, and "done" after it if it printed, so that a wait
// longer than a second never looks like a hang.
func progress(w io.Writer, msg string) (stop func()) {
	var mu sync.Mutex
	printed, stopped := false, false
	t := time.AfterFunc(time.Second, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			printed = true
			fmt.Fprintf(w, "%s...\n", msg)
		}
	})
	return func() {
		t.Stop()
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if printed {
			fmt.Fprintf(w, "%s: done\n", msg)
		}
	}
}
