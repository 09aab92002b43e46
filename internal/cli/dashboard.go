package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/httpapi"
)

func newDashboardCmd(g *globals) *cobra.Command {
	var (
		open   bool
		listen string
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print, or open, the address of the control plane's dependency graph page",
		Long: `dashboard checks that the control plane serves its dependency graph page
to you and prints the page's address; --open also opens it in the system's
browser (xdg-open, open, or the Windows shell).

The page is served by the control plane itself (ddi dev, ddi controller) at
/dashboard/: on ddi dev, to whoever reaches its loopback listener.

On Kubernetes (--kubeconfig, --context, or --control-plane kube) a browser
cannot present your kubeconfig's credentials, so dashboard serves the page
on a loopback address of this machine (--listen) and forwards the page's
requests to the controller with your bearer token, through a port-forward,
until you stop it with Ctrl-C. The controller shows the page only to users
whose RBAC lets them list providers, dependencysets and pods in every
namespace. See docs/dashboard.md.`,
		Example: `  ddi dashboard
  ddi dashboard --open
  ddi --control-plane http://127.0.0.1:7470 dashboard
  ddi --context prod dashboard --open`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.kubeMode() {
				return dashboardProxy(cmd.Context(), g, listen, open)
			}
			url := g.controlPlaneURL() + "/dashboard/"
			stop := progress(g.stderr, "connecting to the control plane at "+g.controlPlaneURL())
			err := checkDashboard(cmd.Context(), http.DefaultClient, url, g.unreachableHint())
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
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "on Kubernetes: the loopback address to serve the page on (port 0 picks a free one)")
	return cmd
}

// dashboardPaths are what the page requests; the local proxy forwards
// nothing else.
func dashboardPath(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet && (p == "/dashboard" || strings.HasPrefix(p, "/dashboard/") || p == "/v1/graph" || p == "/v1/graph/events"):
		return true
	case r.Method == http.MethodPost && p == "/v1/explain":
		return true
	}
	return false
}

// dashboardProxy serves the in-cluster control plane's page on a loopback
// address, forwarding the page's requests with the kubeconfig's
// credentials, until ctx ends. The address accepts only loopback Host and
// Origin headers (httpapi.LocalOnly), as ddi dev does, so that other web
// sites cannot use the person's credentials through it.
func dashboardProxy(ctx context.Context, g *globals, listen string, open bool) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w (give HOST:PORT, such as 127.0.0.1:7475)", listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--listen %q: the page forwards your Kubernetes credentials, so it listens on a loopback address only, such as 127.0.0.1:7475", listen)
	}
	if _, err := g.client(ctx); err != nil {
		return err
	}
	target, err := url.Parse(g.kube.baseURL)
	if err != nil {
		return err
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("Authorization") // the kubeconfig's token is added by the transport
		},
		Transport:     g.kube.http.Transport,
		FlushInterval: -1, // server-sent events as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusBadGateway, "unreachable", err.Error()+"; "+g.unreachableHint()))
		},
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	handler := httpapi.LocalOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !dashboardPath(r) {
			httpapi.WriteProblem(w, httpapi.NewProblem(http.StatusNotFound, "not-found", "this address serves the dependency graph page only: "+r.Method+" "+r.URL.Path+" is not forwarded"))
			return
		}
		proxy.ServeHTTP(w, r)
	}), httpapi.LocalOptions{Listen: ln.Addr().String()})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	page := "http://" + ln.Addr().String() + "/dashboard/"
	stop := progress(g.stderr, "connecting to the control plane through "+g.kube.via)
	err = checkDashboard(ctx, http.DefaultClient, page, g.unreachableHint())
	stop()
	if err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, page)
	fmt.Fprintf(g.stderr, "serving the dependency graph of %s as you at %s; Ctrl-C stops\n", g.kube.via, page)
	if open {
		if err := openBrowser(page); err != nil {
			fmt.Fprintln(g.stderr, err)
		}
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-done:
		return err
	}
}

// checkDashboard fetches the page once and turns a refusal into an error a
// person can act on.
func checkDashboard(ctx context.Context, hc *http.Client, url, hint string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach the control plane for its dashboard: %w (%s)", err, hint)
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
