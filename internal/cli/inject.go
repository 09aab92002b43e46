//go:build !nokube

package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/inject"
)

func newInjectCmd(g *globals) *cobra.Command {
	var (
		file, image, controlPlane, caFile, mode string
	)
	cmd := &cobra.Command{
		Use:   "inject -f FILE",
		Short: "Add the ddi sidecar to the pods of a manifest, offline",
		Long: `inject applies the admission webhook's mutation (the same package) to every
Pod and pod template in FILE: Pods, Deployments, StatefulSets, DaemonSets,
ReplicaSets, Jobs, CronJobs, and Knative Services and Configurations. It
writes the result to stdout in the input's format (YAML or JSON). Objects
that opt out with ddi.dev/inject: "false" and objects already injected are
copied unchanged. FILE "-" reads stdin. Sidecars injected offline trust
the control plane's https certificate only with --control-plane-ca-file.
See docs/injection.md.`,
		Example: `  ddi inject -f deployment.yaml | kubectl apply -f -
  ddi inject -f ksvc.yaml --image registry.local/ddi:v0.1.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return fmt.Errorf("-f is required: the manifest file, or - for stdin")
			}
			var (
				data []byte
				err  error
			)
			if file == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("-f %s: %w", file, err)
			}
			cfg := inject.DefaultConfig()
			if image != "" {
				cfg.Image = image
			}
			if controlPlane != "" {
				cfg.ControlPlaneURL = controlPlane
			}
			if caFile != "" {
				ca, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--control-plane-ca-file: %w", err)
				}
				cfg.ControlPlaneCA = string(ca)
			}
			switch mode {
			case "native":
				cfg.NativeSidecars = true
			case "container":
				cfg.NativeSidecars = false
			default:
				return fmt.Errorf("--mode %q: use native (Kubernetes 1.29 and later) or container", mode)
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			out, err := inject.Manifest(data, cfg)
			if err != nil {
				return fmt.Errorf("-f %s: %w", file, err)
			}
			_, err = g.stdout.Write(out)
			return err
		},
	}
	def := inject.DefaultConfig()
	cmd.Flags().StringVarP(&file, "filename", "f", "", "manifest to inject (YAML or JSON; - for stdin)")
	cmd.Flags().StringVar(&image, "image", "", "sidecar image (default "+def.Image+")")
	cmd.Flags().StringVar(&controlPlane, "control-plane-url", "", "control plane URL the sidecars use (default "+def.ControlPlaneURL+")")
	cmd.Flags().StringVar(&caFile, "control-plane-ca-file", "", "PEM file of the CA the sidecars trust for the control plane, set in their DDI_CONTROL_PLANE_CA (the webhook sets the controller's own; offline, take ca.crt from Secret ddi-system/ddi-webhook-certs)")
	cmd.Flags().StringVar(&mode, "mode", "native", "sidecar mode: native (an init container with restartPolicy Always) or container")
	return cmd
}
