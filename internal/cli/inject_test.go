//go:build !nokube

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddi.dev/ddi/internal/testpki"
)

func TestInjectCommand(t *testing.T) {
	manifest := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: fn
spec:
  selector:
    matchLabels: {app: fn}
  template:
    metadata:
      labels: {app: fn}
      annotations: {ddi.dev/dependencies: "db=postgresql@^15"}
    spec:
      containers:
      - name: fn
        image: fn:v1
`
	path := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "inject", "-f", path)
	if err != nil || !strings.Contains(out, "name: ddi-sidecar") || !strings.Contains(out, "SERVICE_BINDING_ROOT") {
		t.Fatalf("inject = %q, %v; want the sidecar and the binding root", out, err)
	}
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	again, _, err := run(t, "inject", "-f", path)
	if err != nil || again != out {
		t.Errorf("injecting an injected manifest changed it (err %v):\n%s", err, cmpLines(out, again))
	}
	if _, _, err := run(t, "inject"); err == nil || !strings.Contains(err.Error(), "-f") {
		t.Errorf("inject without -f = %v, want an error naming -f", err)
	}
	if _, _, err := run(t, "inject", "-f", path, "--mode", "sidecar"); err == nil || !strings.Contains(err.Error(), "--mode") {
		t.Errorf("inject --mode sidecar = %v, want an error naming --mode", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte(strings.Replace(manifest, "postgresql@^15", "postgresql@^^15", 1)), 0o600)
	if _, _, err := run(t, "inject", "-f", bad); err == nil || !strings.Contains(err.Error(), "ddi.dev/dependencies") {
		t.Errorf("inject with a bad dependency = %v, want an error naming ddi.dev/dependencies", err)
	}
}

func cmpLines(a, b string) string { return "--- first\n" + a + "\n--- second\n" + b }

func TestInjectControlPlaneCA(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: fn}\nspec:\n  containers: [{name: fn, image: 'fn:v1'}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, testpki.CAPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "inject", "-f", manifest)
	if err != nil || strings.Contains(out, "DDI_CONTROL_PLANE_CA") || !strings.Contains(out, "value: https://ddi-controller.ddi-system.svc:7470") {
		t.Errorf("inject without a CA = %q, %v; want the https control plane and no DDI_CONTROL_PLANE_CA", out, err)
	}
	out, _, err = run(t, "inject", "-f", manifest, "--control-plane-ca-file", ca)
	if err != nil || !strings.Contains(out, "name: DDI_CONTROL_PLANE_CA") || !strings.Contains(out, "BEGIN CERTIFICATE") {
		t.Errorf("inject --control-plane-ca-file = %q, %v; want DDI_CONTROL_PLANE_CA with the PEM", out, err)
	}
	if _, _, err := run(t, "inject", "-f", manifest, "--control-plane-ca-file", notPEM); err == nil || !strings.Contains(err.Error(), "control plane CA") {
		t.Errorf("inject with a CA file that is not PEM = %v, want an error about the control plane CA", err)
	}
	if _, _, err := run(t, "inject", "-f", manifest, "--control-plane-ca-file", filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--control-plane-ca-file") {
		t.Errorf("inject with a missing CA file = %v, want an error naming --control-plane-ca-file", err)
	}
}
