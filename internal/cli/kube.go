//go:build !nokube

package cli

import "github.com/spf13/cobra"

// kubeCommands are the commands that need the Kubernetes libraries:
// `ddi controller` and `ddi inject`. A build with -tags nokube (the
// sidecar image) has none (kube_none.go), which keeps those libraries out
// of the sidecar's memory and start-up time.
func kubeCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newControllerCmd(g), newInjectCmd(g)}
}
