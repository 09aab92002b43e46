package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/sidecar"
)

func newSidecarCmd(g *globals) *cobra.Command {
	var (
		cfg            sidecar.Config
		deps, labels   []string
		depsAnnotation string
	)
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Run the per-function sidecar (injected into pods; ddi run starts one for you)",
		Long: `sidecar serves a function's bindings on a loopback HTTP API (docs/api.md),
projects them as Service Binding files, proxies invocations, and keeps
everything current from the control plane's snapshot stream.

Every flag can also be set through the environment variable shown in its
help; flags win over the environment. On Kubernetes the injector sets
DDI_CONTROL_PLANE (https) and DDI_CONTROL_PLANE_CA, the PEM of the CA that
signed the controller's certificate (docs/injection.md).

Unless GOGC is set, the sidecar runs the garbage collector at GOGC=400:
its heap is tiny, and collecting less often saves CPU per proxied request.`,
		Example: `  ddi sidecar --name frontend --dep greeter=http@^1 --binding-root /tmp/bindings
  DDI_NAME=frontend DDI_DEPENDENCIES='greeter=http@^1' ddi sidecar`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tuneGC()
			log, err := g.logger()
			if err != nil {
				return err
			}
			envDefault(cmd.Flags(), "listen", "DDI_SIDECAR_LISTEN")
			envDefault(cmd.Flags(), "name", "DDI_NAME")
			envDefault(cmd.Flags(), "name", "DDI_POD_NAME")
			envDefault(cmd.Flags(), "namespace", "DDI_NAMESPACE")
			envDefault(cmd.Flags(), "namespace", "DDI_POD_NAMESPACE")
			envDefault(cmd.Flags(), "service-account", "DDI_SERVICE_ACCOUNT")
			envDefault(cmd.Flags(), "binding-root", "SERVICE_BINDING_ROOT")
			envDefault(cmd.Flags(), "token-file", "DDI_TOKEN_FILE")
			envDefault(cmd.Flags(), "dependencies", "DDI_DEPENDENCIES")
			envDefault(cmd.Flags(), "control-plane-ca-file", "DDI_CONTROL_PLANE_CA_FILE")
			envDefault(cmd.Flags(), "podinfo-dir", "DDI_PODINFO_DIR")
			envDefault(cmd.Flags(), "outlive-app", "DDI_OUTLIVE_APP")
			envDefault(cmd.Flags(), "metrics-listen", "DDI_METRICS_LISTEN")
			envDefault(cmd.Flags(), "app-ports", "DDI_APP_PORTS")
			if cfg.CAFile == "" {
				// The injector hands the CA over in the environment itself.
				if pem := os.Getenv("DDI_CONTROL_PLANE_CA"); strings.TrimSpace(pem) != "" {
					cfg.CA = []byte(pem)
				}
			}
			parsed, err := parseDepFlags(deps)
			if err != nil {
				return err
			}
			if depsAnnotation != "" {
				more, err := registry.ParseDependencies(depsAnnotation)
				if err != nil {
					return fmt.Errorf("--dependencies: %w", err)
				}
				parsed = append(parsed, more...)
			}
			if cfg.Consumer.Labels, err = parsePairs("--label", labels, nil); err != nil {
				return err
			}
			cfg.ControlPlane = g.controlPlaneURL()
			cfg.Dependencies = parsed
			sc, err := sidecar.New(cfg, log)
			if err != nil {
				return err
			}
			err = sc.Run(cmd.Context())
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", sidecar.DefaultListen, "loopback address of the sidecar API ($DDI_SIDECAR_LISTEN)")
	f.StringVar(&cfg.Consumer.Name, "name", "", "function (consumer) name ($DDI_NAME, else $DDI_POD_NAME; on Kubernetes the control plane derives it from the pod)")
	f.StringVar(&cfg.Consumer.Namespace, "namespace", registry.DefaultNamespace, "namespace of the function ($DDI_NAMESPACE, else $DDI_POD_NAMESPACE)")
	f.StringVar(&cfg.Consumer.ServiceAccount, "service-account", "", "service account of the function ($DDI_SERVICE_ACCOUNT)")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE of the function; repeatable")
	f.StringArrayVar(&deps, "dep", nil, "dependency ALIAS=SELECTOR, or ALIAS=W%SELECTOR,... for a weighted split; repeatable")
	f.StringVar(&depsAnnotation, "dependencies", "", "dependencies as in the ddi.dev/dependencies annotation: ALIAS=SELECTOR;... ($DDI_DEPENDENCIES)")
	f.StringVar(&cfg.BindingRoot, "binding-root", "", "directory for Service Binding files; empty disables them ($SERVICE_BINDING_ROOT)")
	f.StringVar(&cfg.CAFile, "control-plane-ca-file", "", "PEM file of the CAs trusted for an https control plane instead of the system roots ($DDI_CONTROL_PLANE_CA_FILE; else the PEM itself in $DDI_CONTROL_PLANE_CA, as injected on Kubernetes)")
	f.StringVar(&cfg.PodInfoDir, "podinfo-dir", "", "the pod's downward-API folder (files labels, annotations): when they change, reconnect so the control plane identifies the pod again ($DDI_PODINFO_DIR)")
	f.StringVar(&cfg.TokenFile, "token-file", "", "file holding the bearer token for the control plane, re-read on every connect ($DDI_TOKEN_FILE)")
	f.DurationVar(&cfg.InvokeTimeout, "invoke-timeout", sidecar.DefaultInvokeTimeout, "default timeout of /v1/invoke requests")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "also serve GET /metrics, and nothing else, on this address (for example :9471, every address of the pod) for a cluster's Prometheus; empty: none ($DDI_METRICS_LISTEN; the injector sets :9471)")
	f.BoolVar(&cfg.OutliveApp, "outlive-app", false, "on SIGTERM, keep serving until the function has exited: none of --app-ports accepts a connection and the API has been idle for --outlive-quiet ($DDI_OUTLIVE_APP; the injector sets it for plain-container sidecars)")
	f.IntSliceVar(&cfg.AppPorts, "app-ports", nil, "the function's TCP ports, watched on loopback with --outlive-app ($DDI_APP_PORTS, comma-separated)")
	f.DurationVar(&cfg.OutliveQuiet, "outlive-quiet", sidecar.DefaultOutliveQuiet, "with --outlive-app: how long the function must look gone before the sidecar stops")
	f.DurationVar(&cfg.OutliveMax, "outlive-max", sidecar.DefaultOutliveMax, "with --outlive-app: the longest wait for the function (the kubelet's grace period ends it sooner)")
	f.DurationVar(&cfg.RegistrationTTL, "registration-ttl", sidecar.DefaultRegistrationTTL, "default lease of run-time registrations")
	return cmd
}

// envDefault sets flag name from environment variable env when the flag
// was not given on the command line.
func envDefault(flags *pflag.FlagSet, name, env string) {
	if flags.Changed(name) {
		return
	}
	if v, ok := os.LookupEnv(env); ok && strings.TrimSpace(v) != "" {
		_ = flags.Set(name, v)
	}
}

// tuneGC trades a little memory for CPU on the invoke path: the sidecar's
// live heap is a few hundred kilobytes, so collecting at 4x instead of 2x
// of it costs almost nothing and saves about a tenth of the CPU per proxied
// request. An explicit GOGC in the environment wins.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
}
