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
	controlPlane   string
	kubeconfig     string
	kubeContext    string
	controlPlaneCA string
	logLevel       string
	stdout         io.Writer
	stderr         io.Writer

	// The way to an in-cluster control plane, opened on first use and
	// closed when the command ends.
	kubeOnce sync.Once
	kube     *kubeConn
	kubeErr  error
}

// Run executes the ddi command line with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRootWith(g)
	root.SetArgs(args)
	defer g.closeKube()
	return root.ExecuteContext(ctx)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	return newRootWith(&globals{stdout: stdout, stderr: stderr})
}

func newRootWith(g *globals) *cobra.Command {
	stdout, stderr := g.stdout, g.stderr
	root := &cobra.Command{
		Use:   "ddi",
		Short: "Distributed dependency injection for serverless functions",
		Long: `ddi hands a function the dependencies it declares (a database, a cache,
another function) through a sidecar beside it, and keeps them current as
providers move, scale, rotate credentials or fail.

The control plane address comes from, in order: the --control-plane flag,
the DDI_CONTROL_PLANE environment variable, then ` + DefaultControlPlane + `
(the one ` + "`ddi dev`" + ` runs).

To reach the controller of a Kubernetes cluster (ddi controller), give
--kubeconfig or --context, or set the address to "kube": ddi then opens a
port-forward to a ready controller pod in ddi-system and presents your
kubeconfig's bearer token, so you see what your own RBAC on ddi.dev
resources allows (docs/security.md). With an https address as well, ddi
sends the same token there instead (your own kubectl port-forward, with
--control-plane-ca).`,
		Example: `  ddi demo                      # watch it work end to end
  ddi dev                       # run a local control plane
  ddi provider add greeter --type http --url http://127.0.0.1:9001 --version 1.0.0
  ddi run --name frontend --dep greeter=http@^1 -- ./frontend
  ddi --context prod status     # the controller of a cluster, as yourself`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.controlPlane, "control-plane", "", "control plane URL (default $DDI_CONTROL_PLANE, else "+DefaultControlPlane+")")
	root.PersistentFlags().StringVar(&g.kubeconfig, "kubeconfig", "", "reach the controller of the cluster in this kubeconfig file, with its user's credentials (default $KUBECONFIG, else ~/.kube/config, when --context or --control-plane kube is given)")
	root.PersistentFlags().StringVar(&g.kubeContext, "context", "", "reach the controller of this kubeconfig context's cluster, with its user's credentials")
	root.PersistentFlags().StringVar(&g.controlPlaneCA, "control-plane-ca", "", "PEM file of the CA that signs the in-cluster control plane's certificate (default: the caBundle of MutatingWebhookConfiguration ddi-sidecar-injector)")
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

// kubeAddress is the control plane address that means "the controller
// of the kubeconfig's cluster, through a port-forward".
const kubeAddress = "kube"

// rawControlPlane is --control-plane, else DDI_CONTROL_PLANE, else "".
func (g *globals) rawControlPlane() string {
	if g.controlPlane != "" {
		return strings.TrimRight(g.controlPlane, "/")
	}
	return strings.TrimRight(os.Getenv("DDI_CONTROL_PLANE"), "/")
}

// kubeMode reports whether the CLI reaches the control plane with the
// kubeconfig's credentials: --kubeconfig or --context is given, or the
// address is "kube".
func (g *globals) kubeMode() bool {
	return g.kubeconfig != "" || g.kubeContext != "" || g.rawControlPlane() == kubeAddress
}

// controlPlaneURL applies the documented precedence. In kube mode without
// an address it names the cluster's controller.
func (g *globals) controlPlaneURL() string {
	raw := g.rawControlPlane()
	switch {
	case g.kubeMode() && (raw == "" || raw == kubeAddress):
		if g.kube != nil {
			return g.kube.baseURL
		}
		return "the ddi controller of the kubeconfig's cluster"
	case raw != "":
		return raw
	}
	return DefaultControlPlane
}

// unreachableHint is what an error says when no control plane answered.
func (g *globals) unreachableHint() string {
	if g.kubeMode() {
		via := "the kubeconfig"
		if g.kube != nil {
			via = g.kube.via
		}
		return "no control plane answered through " + via + ": check the controller (kubectl -n ddi-system get pods), or drop --kubeconfig/--context and start a local one with `ddi dev`"
	}
	return "is a control plane running at " + g.controlPlaneURL() + "? start one with `ddi dev`, point --control-plane or DDI_CONTROL_PLANE at one, or reach a cluster's controller with --context or --kubeconfig"
}

// client returns a client of the control plane: the local one, the one
// at --control-plane, or (kube mode) the cluster's controller with the
// kubeconfig's credentials, whose port-forward it opens on first use.
func (g *globals) client(ctx context.Context) (*client.Client, error) {
	if !g.kubeMode() {
		return &client.Client{BaseURL: g.controlPlaneURL(), Hint: g.unreachableHint()}, nil
	}
	g.kubeOnce.Do(func() {
		url := g.rawControlPlane()
		if url == kubeAddress {
			url = ""
		}
		stop := progress(g.stderr, "connecting to the ddi controller through the kubeconfig")
		g.kube, g.kubeErr = connectKube(ctx, g.kubeconfig, g.kubeContext, url, g.controlPlaneCA)
		stop()
	})
	if g.kubeErr != nil {
		return nil, g.kubeErr
	}
	return &client.Client{BaseURL: g.kube.baseURL, HTTP: g.kube.http, Hint: g.unreachableHint()}, nil
}

// closeKube closes the port-forward, if one was opened.
func (g *globals) closeKube() {
	if g.kube != nil {
		g.kube.close()
	}
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
			c, err := g.client(cmd.Context())
			var remote client.BuildInfo
			if err == nil {
				remote, err = c.Version(cmd.Context())
				out.URL = g.controlPlaneURL()
			}
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
					fmt.Fprintf(tw, "control plane %s unreachable: %s\n", out.URL, out.Error)
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
