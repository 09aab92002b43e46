//go:build !nokube

package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubeconfigErrors: every way the kubeconfig path can fail before a
// request says what to do.
func TestKubeconfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, user string) string {
		p := filepath.Join(dir, name)
		kc := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: ` + user + `
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`
		if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certOnly := write("cert", `{client-certificate-data: "", username: ""}`)
	impersonating := write("as", `{token: abc, as: someone-else}`)
	withToken := write("token", `{token: abc}`)
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "no kubeconfig", env: map[string]string{"KUBECONFIG": filepath.Join(dir, "missing"), "HOME": dir},
			args: []string{"--control-plane", "kube", "status"}, want: "no kubeconfig found"},
		{name: "unknown context", args: []string{"--kubeconfig", withToken, "--context", "nosuch", "status"}, want: `context "nosuch" does not exist`},
		{name: "client certificate only", args: []string{"--kubeconfig", certOnly, "status"}, want: "has no bearer token"},
		{name: "impersonation", args: []string{"--kubeconfig", impersonating, "status"}, want: "impersonates another user"},
		{name: "bad CA file", args: []string{"--kubeconfig", withToken, "--control-plane", "https://127.0.0.1:1", "--control-plane-ca", withToken, "status"},
			want: "no PEM certificate"},
		{name: "nothing answers at the address", args: []string{"--kubeconfig", withToken, "--control-plane", "https://127.0.0.1:1", "status"},
			want: "no control plane answered through kubeconfig"},
		{name: "no local control plane", args: []string{"--control-plane", "http://127.0.0.1:1", "status"}, want: "start one with `ddi dev`"},
		{name: "dashboard on a non-loopback address", args: []string{"--kubeconfig", withToken, "dashboard", "--listen", "0.0.0.0:7475"},
			want: "listens on a loopback address only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			t.Setenv("DDI_CONTROL_PLANE", "")
			var out bytes.Buffer
			err := Run(t.Context(), tt.args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ddi %s = %v, want an error containing %q", strings.Join(tt.args, " "), err, tt.want)
			}
		})
	}
}
