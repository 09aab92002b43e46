//go:build !nokube

package cli

import (
	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/controller"
)

func newControllerCmd(g *globals) *cobra.Command {
	opts := controller.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the Kubernetes control plane: registry, snapshot stream, webhook, reconcilers",
		Long: `controller runs ddi on Kubernetes as one controller-runtime manager: the
registry on Provider custom resources, the snapshot stream for in-cluster
sidecars (authenticated with their pods' service-account tokens), the Pod
mutating webhook with its own certificate and caBundle, and the Provider and
DependencySet reconcilers. In a cluster it uses its service account; out of
the cluster give it --kubeconfig. See docs/kubernetes.md.`,
		Example: `  ddi controller                               # in cluster (deploy/)
  ddi controller --kubeconfig ~/.kube/config    # out of cluster, for development`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			opts.Logger = log
			return controller.Run(cmd.Context(), opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}
