//go:build nokube

package cli

import "github.com/spf13/cobra"

// kubeCommands is empty in a build with -tags nokube: no `ddi controller`,
// no `ddi inject` (kube.go).
func kubeCommands(*globals) []*cobra.Command { return nil }
