package cli

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"ddi.dev/ddi/internal/controlplane"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(t.Context(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func startTestControlPlane(t *testing.T) string {
	t.Helper()
	cp, err := controlplane.StartLocal(context.Background(), filepath.Join(t.TempDir(), "data"), "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	return cp.URL
}

func TestEveryCommandHasHelpAndExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c.Runnable() && c.Example == "" {
			t.Errorf("command %q has no example in its --help", c.CommandPath())
		}
		if c.Short == "" {
			t.Errorf("command %q has no short description", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&bytes.Buffer{}, &bytes.Buffer{}))
	out, _, err := run(t, "provider", "add", "--help")
	if err != nil || !strings.Contains(out, "Examples:") {
		t.Errorf("provider add --help = %q, %v; want a usage with examples", out, err)
	}
}

func TestControlPlanePrecedence(t *testing.T) {
	tests := []struct {
		name, flag, env, want string
	}{
		{name: "default", want: DefaultControlPlane},
		{name: "env", env: "http://env:1", want: "http://env:1"},
		{name: "flag beats env", flag: "http://flag:2/", env: "http://env:1", want: "http://flag:2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DDI_CONTROL_PLANE", tc.env)
			g := &globals{controlPlane: tc.flag}
			if got := g.controlPlaneURL(); got != tc.want {
				t.Errorf("controlPlaneURL() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProviderCommands(t *testing.T) {
	cp := startTestControlPlane(t)
	out, _, err := run(t, "--control-plane", cp, "provider", "add", "db", "--type", "postgres", "--version", "15.4.0",
		"--url", "postgres://127.0.0.1:5432/app", "--label", "tier=gold", "--config", "database=app", "--secret", "password=hunter2")
	if err != nil || !strings.Contains(out, "provider default/db added") {
		t.Fatalf("provider add = %q, %v", out, err)
	}
	for _, format := range []string{"table", "json", "yaml"} {
		out, _, err := run(t, "--control-plane", cp, "provider", "list", "-o", format)
		if err != nil || !strings.Contains(out, "postgresql") || strings.Contains(out, "hunter2") {
			t.Errorf("provider list -o %s = %q, %v; want the provider without its secret", format, out, err)
		}
	}
	out, _, err = run(t, "--control-plane", cp, "provider", "get", "db")
	if err != nil || !strings.Contains(out, "Secret keys:  password") || strings.Contains(out, "hunter2") {
		t.Errorf("provider get = %q, %v; want secret keys without values", out, err)
	}
	out, _, err = run(t, "--control-plane", cp, "resolve", "orders", "db=postgresql@^15,tier=gold", "-o", "json")
	if err != nil || !strings.Contains(out, `"provider": "db"`) || strings.Contains(out, "hunter2") {
		t.Errorf("resolve = %q, %v; want db without secret", out, err)
	}
	_, _, err = run(t, "--control-plane", cp, "resolve", "orders", "db=postgresql@^16")
	if err == nil || !strings.Contains(err.Error(), `"db"`) || !strings.Contains(err.Error(), "postgresql@^16") {
		t.Errorf("resolve out of range = %v; want an error naming the dependency and the selector", err)
	}
	if out, _, err = run(t, "--control-plane", cp, "provider", "rm", "db"); err != nil || !strings.Contains(out, "removed") {
		t.Errorf("provider rm = %q, %v", out, err)
	}
	if _, _, err = run(t, "--control-plane", cp, "provider", "get", "db"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("provider get after rm = %v; want not found", err)
	}
}

func TestProviderAddBadInput(t *testing.T) {
	cp := startTestControlPlane(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "missing type", args: []string{"a", "--url", "http://x:1"}, want: "--type"},
		{name: "bad name", args: []string{"Bad_Name", "--type", "http"}, want: "NAME"},
		{name: "bad version", args: []string{"a", "--type", "http", "--version", "one"}, want: "--version"},
		{name: "bad url", args: []string{"a", "--type", "http", "--url", "nohost"}, want: "--url"},
		{name: "bad label", args: []string{"a", "--type", "http", "--label", "tier"}, want: "--label"},
		{name: "traversal config key", args: []string{"a", "--type", "http", "--config", "../x=1"}, want: "--config"},
		{name: "bad secret keeps value out", args: []string{"a", "--type", "http", "--secret", "hunter2"}, want: "--secret"},
		{name: "bad ttl", args: []string{"a", "--type", "http", "--ttl", "-1s"}, want: "--ttl"},
		{name: "no name", args: []string{"--type", "http"}, want: "NAME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, append([]string{"--control-plane", cp, "provider", "add"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("provider add %v = %v, want an error naming %s", tc.args, err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
	out, _, err := run(t, "--control-plane", cp, "provider", "list", "-o", "json")
	if err != nil || strings.Contains(out, `"name"`) {
		t.Errorf("after bad input, provider list = %q, %v; want no providers", out, err)
	}
	if _, _, err := run(t, "--control-plane", cp, "provider", "list", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Errorf("list -o xml = %v, want an error naming --output", err)
	}
}

func TestRunBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no name", args: []string{"run", "--", "true"}, want: "--name"},
		{name: "bad dep", args: []string{"run", "--name", "fn", "--dep", "db", "--", "true"}, want: "--dep"},
		{name: "bad range", args: []string{"run", "--name", "fn", "--dep", "db=postgresql@^^1", "--", "true"}, want: "--dep"},
		{name: "duplicate alias", args: []string{"run", "--name", "fn", "--dep", "a=x", "--dep", "a=y", "--", "true"}, want: "--dep"},
		{name: "command without dash", args: []string{"run", "--name", "fn", "true"}, want: "--"},
		{name: "bad log level", args: []string{"--log-level", "loud", "run", "--name", "fn", "--", "true"}, want: "--log-level"},
		{name: "dev non-loopback", args: []string{"dev", "--listen", "0.0.0.0:7470", "--data", "x"}, want: "--listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ddi %v = %v, want an error naming %s", tc.args, err, tc.want)
			}
		})
	}
}

func TestRunPassesEnvironmentAndExitCode(t *testing.T) {
	cp := startTestControlPlane(t)
	if _, _, err := run(t, "--control-plane", cp, "provider", "add", "greeter", "--type", "http", "--url", "http://127.0.0.1:9"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, _, err := run(t, "--control-plane", cp, "run", "--name", "fn", "--dep", "g=greeter", "--binding-root", dir, "--",
		"sh", "-c", `test -n "$DDI_ADDR" && test "$SERVICE_BINDING_ROOT" = "`+dir+`" && test "$(cat $SERVICE_BINDING_ROOT/g/type)" = http && exit 7`)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 7 {
		t.Fatalf("ddi run = %v, want exit status 7 from the command (environment and binding files present)", err)
	}
}

func TestProbeCommand(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer ok.Close()
	if _, _, err := run(t, "probe", ok.URL+"/readyz"); err != nil {
		t.Errorf("probe of a 200 = %v, want success", err)
	}
	if _, _, err := run(t, "probe", "--wait=0", ok.URL+"/other"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("probe of a 503 = %v, want an error with the status", err)
	}
	start := time.Now()
	if _, _, err := run(t, "probe", "--wait=200ms", ok.URL+"/other"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("probe of a 503 with retries = %v, want an error with the status", err)
	} else if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("probe of a 503 with --wait=200ms gave up after %s, want about 200ms", d)
	}
}

// TestProbeWaitsForReadiness is the injected startup probe's case: the
// sidecar turns ready a little after the kubelet's first probe.
func TestProbeWaitsForReadiness(t *testing.T) {
	readyAt := time.Now().Add(150 * time.Millisecond)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if time.Now().Before(readyAt) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if _, _, err := run(t, "probe", srv.URL+"/readyz"); err != nil {
		t.Errorf("probe of a sidecar ready after 150ms = %v, want success within the default wait", err)
	}
}

// TestRunShowsProgress: `ddi run` says what it waits for when the first
// snapshot takes more than a second (here: no control plane answers), and
// then starts the command anyway.
func TestRunShowsProgress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	_, stderr, err := run(t, "run", "--control-plane", dead, "--name", "fn", "--binding-root", t.TempDir(),
		"--sidecar-listen", "127.0.0.1:0", "--ready-timeout", "1500ms", "--", "true")
	if err != nil {
		t.Fatalf("ddi run = %v\n%s", err, stderr)
	}
	want := "waiting for the sidecar's first snapshot from the control plane at " + dead + "..."
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "first snapshot from the control plane at "+dead+": done") {
		t.Errorf("stderr of ddi run lacks the progress lines %q and its done line:\n%s", want, stderr)
	}
}
