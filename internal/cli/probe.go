package cli

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// defaultProbeWait keeps a probe, retries included, under the kubelet's
// one-second timeout of the injected startup probe.
const defaultProbeWait = 700 * time.Millisecond

func newProbeCmd(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "probe URL",
		Short: "Exit 0 when URL answers 2xx (the injected sidecar's exec probes)",
		Long: `probe GETs URL and exits 0 on a 2xx answer, 1 otherwise. The injected
sidecar listens on loopback only, where the kubelet's HTTP probes cannot
reach it, so its startup and liveness probes run this inside the container.

A failed attempt is retried every 5ms for up to --wait. The injected
ordered sidecar's postStart hook runs "ddi probe --wait=5m0s
http://127.0.0.1:7471/readyz?wait=5m0s": the sidecar answers that request
the moment it is ready. The kubelet runs
the startup probe the moment the sidecar starts, a few tens of
milliseconds before its first snapshot is loaded; without the retries that
first probe fails and the function starts one probe period (a second)
later.`,
		Example: "  ddi probe http://127.0.0.1:7471/readyz",
		Args:    exactArgs(1, "URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), max(wait, 0)+300*time.Millisecond)
			defer cancel()
			deadline := time.Now().Add(wait)
			for {
				err := probeOnce(ctx, args[0])
				if err == nil || !time.Now().Before(deadline) {
					return err
				}
				select {
				case <-ctx.Done():
					return err
				case <-time.After(5 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", defaultProbeWait, "keep retrying a failed probe for this long (0: one attempt)")
	return cmd
}

// probeOnce GETs url once and reports anything but a 2xx answer.
func probeOnce(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: %s", url, resp.Status)
	}
	return nil
}
