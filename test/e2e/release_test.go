//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReleaseInstallAndUninstall installs ddi the way docs/install.md tells
// a platform team to: hack/release.sh builds the images, pushes them to the
// local cluster's registry and writes release.yaml with digests; `kubectl
// apply -f release.yaml` installs it; an opted-in pod gets the release's
// sidecar, pulled from the registry by digest. Then it uninstalls in the
// documented order and checks that no object of release.yaml is left.
func TestReleaseInstallAndUninstall(t *testing.T) {
	c := requireCluster(t)
	reg := os.Getenv("DDI_CLUSTER_REGISTRY")
	if reg == "" {
		reg = "127.0.0.1:5001"
	}
	out := filepath.Join(t.TempDir(), "release.yaml")
	cmd := exec.Command(filepath.Join(c.repo, "hack", "release.sh"), "--registry", reg, "--version", "v0.0.0-e2e", "--platforms", "linux/amd64", "--output", out)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":"+filepath.Dir(c.kubectl))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/release.sh: %v\n%s", err, tail(string(b), 40))
	}
	manifest, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(regexp.QuoteMeta(reg) + `/[a-z-]+@sha256:[0-9a-f]{64}`).FindAllString(string(manifest), -1)
	var controllerImage, sidecarImage string
	for _, r := range refs {
		switch {
		case strings.HasPrefix(r, reg+"/ddi@"):
			controllerImage = r
		case strings.HasPrefix(r, reg+"/ddi-sidecar@"):
			sidecarImage = r
		}
	}
	if controllerImage == "" || sidecarImage == "" {
		t.Fatalf("release.yaml names no controller or sidecar image by digest in %s (found %v)", reg, refs)
	}

	const ns = "release-e2e"
	c.deleteNamespace(t, ns)
	t.Cleanup(func() {
		if os.Getenv("DDI_E2E_KEEP") != "1" {
			c.deleteNamespace(t, ns)
		}
	})
	c.kubectlRun(t, "apply", "-f", out)
	c.kubectlRun(t, "-n", "ddi-system", "rollout", "status", "deploy/ddi-controller", "--timeout=180s")
	for _, p := range c.readyControllers(t, c.controllerReplicas(t), 2*time.Minute) {
		if got := p.Spec.Containers[0].Image; got != controllerImage {
			t.Errorf("controller pod %s runs %s, want release.yaml's %s", p.Name, got, controllerImage)
		}
	}
	eventually(t, time.Minute, "the controller to fill the webhook's caBundle", func() (bool, error) {
		out, err := c.tryKubectl("", "get", "mutatingwebhookconfiguration", "ddi-sidecar-injector", "-o", "jsonpath={.webhooks[0].clientConfig.caBundle}")
		return err == nil && out != "", err
	})

	t.Run("an opted-in pod gets the release's sidecar from the registry", func(t *testing.T) {
		c.kubectlIn(t, `apiVersion: v1
kind: Namespace
metadata:
  name: `+ns+`
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fn
  namespace: `+ns+`
spec:
  selector:
    matchLabels: {app: fn}
  template:
    metadata:
      labels: {app: fn, ddi.dev/inject: "true"}
    spec:
      containers:
      - name: fn
        image: ddi.local/hello:v1
`, "apply", "-f", "-")
		pod := c.readyPod(t, ns, "app=fn", 3*time.Minute)
		var got string
		for _, ctr := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
			if ctr.Name == "ddi-sidecar" {
				got = ctr.Image
			}
		}
		if got != sidecarImage {
			t.Errorf("pod %s's ddi-sidecar image = %q, want release.yaml's %s (containers %v)", pod.Name, got, sidecarImage, names(&pod))
		}
	})

	t.Run("uninstalling in the documented order leaves no object of release.yaml", func(t *testing.T) {
		// docs/install.md, "Uninstalling", the three steps as printed.
		c.kubectlRun(t, "delete", "mutatingwebhookconfiguration", "ddi-sidecar-injector")
		c.kubectlRun(t, "delete", "servicebindings.servicebinding.io", "--all", "--all-namespaces", "--wait")
		c.kubectlRun(t, "delete", "-f", out, "--ignore-not-found")
		eventually(t, 3*time.Minute, "every object of release.yaml to be gone", func() (bool, error) {
			left, err := c.tryKubectl("", "get", "-f", out, "--ignore-not-found", "-o", "name")
			return err == nil && strings.TrimSpace(left) == "", nil
		})
		if left, _ := c.tryKubectl("", "get", "-f", out, "--ignore-not-found", "-o", "name"); strings.TrimSpace(left) != "" {
			t.Errorf("left behind after uninstalling: %s", left)
		}
	})
}
