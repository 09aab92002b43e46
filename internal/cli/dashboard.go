package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"time"

	"github.com/spf13/cobra"
)

func newDashboardCmd(g *globals) *cobra.Command {
	var open bool
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print, or open, the address of the control plane's dependency graph page",
		Long: `dashboard checks that the control plane serves its dependency graph page
to you and prints the page's address; --open also opens it in the system's
browser (xdg-open, open, or the Windows shell).

The page is served by the control plane itself (ddi dev, ddi controller) at
/dashboard/, to admin callers only: on ddi dev, whoever reaches its loopback
listener. See docs/dashboard.md.`,
		Example: `  ddi dashboard
  ddi dashboard --open
  ddi --control-plane http://127.0.0.1:7470 dashboard`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			url := g.controlPlaneURL() + "/dashboard/"
			stop := progress(g.stderr, "connecting to the control plane at "+g.controlPlaneURL())
			err := checkDashboard(cmd.Context(), url)
			stop()
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, url)
			if open {
				return openBrowser(url)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&open, "open", false, "open the page in the system's browser")
	return cmd
}

// checkDashboard fetches the page once and turns a refusal into an error a
// person can act on.
func checkDashboard(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the control plane for its dashboard: %w (start one with `ddi dev`, or point --control-plane or DDI_CONTROL_PLANE at one)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var p struct {
		Detail string `json:"detail"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &p) != nil || p.Detail == "" {
		p.Detail = http.StatusText(resp.StatusCode)
	}
	return fmt.Errorf("GET %s = %d: %s", url, resp.StatusCode, p.Detail)
}

// openBrowser starts the system's handler for url and does not wait for it.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("open the page: %w; open %s yourself", err, url)
		}
		return fmt.Errorf("open the page: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
