package cli

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

func newProbeCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	return &cobra.Command{
		Use:   "probe URL",
		Short: "Exit 0 when URL answers 2xx (the injected sidecar's exec probes)",
		Long: `probe GETs URL and exits 0 on a 2xx answer, 1 otherwise. The injected
sidecar listens on loopback only, where the kubelet's HTTP probes cannot
reach it, so its startup and liveness probes run this inside the container.`,
		Example: "  ddi probe http://127.0.0.1:7471/readyz",
		Args:    exactArgs(1, "URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client := &http.Client{Timeout: timeout}
			resp, err := client.Get(args[0])
			if err != nil {
				return fmt.Errorf("probe %s: %w", args[0], err)
			}
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return fmt.Errorf("probe %s: %s", args[0], resp.Status)
			}
			return nil
		},
	}
}
