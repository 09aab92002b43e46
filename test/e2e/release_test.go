//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	refs := regexp.MustCompile(regexp.QuoteMeta(reg)+`/[a-z-]+@sha256:[0-9a-f]{64}`).FindAllString(string(manifest), -1)
	var controllerImage, sidecarRef string
	for _, r := range refs {
		switch {
		case strings.HasPrefix(r, reg+"/ddi@"):
			controllerImage = r
		case strings.HasPrefix(r, reg+"/ddi-sidecar@"):
			sidecarRef = r
		}
	}
	if controllerImage == "" || sidecarRef == "" {
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
		if got := sidecarImage(&pod); got != sidecarRef {
			t.Errorf("pod %s's ddi-sidecar image = %q, want release.yaml's %s (containers %v)", pod.Name, got, sidecarRef, names(&pod))
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

// previousRelease is the commit the upgrade test builds the previous
// release from: the first commit whose tree makes a release manifest
// (hack/release.sh). A release moves it to the commit of the release
// before it.
const previousRelease = "d1f4360e411e19d0406b9d63ccf839a848dae8bf"

// TestUpgradeUnderTraffic installs the previous release's release.yaml
// (built from previousRelease's own tree and hack/release.sh), runs that
// tree's Knative examples (frontend calling greeter through its sidecar)
// under steady traffic, applies this tree's release.yaml, and counts
// failed requests (0 wanted). The running frontend pod keeps its old
// sidecar, which must reconnect to the new controller and keep serving;
// a pod created afterwards must get the new sidecar.
func TestUpgradeUnderTraffic(t *testing.T) {
	c := requireCluster(t)
	im := c.buildImages(t)
	reg := os.Getenv("DDI_CLUSTER_REGISTRY")
	if reg == "" {
		reg = "127.0.0.1:5001"
	}
	if err := exec.Command("git", "-C", c.repo, "cat-file", "-e", previousRelease+"^{commit}").Run(); err != nil {
		t.Skipf("skipped: the previous release's commit %s is not in this clone (a shallow clone?); fetch the full history to run the upgrade test", previousRelease)
	}
	dir := t.TempDir()
	old := filepath.Join(dir, "previous")
	if b, err := exec.Command("git", "-C", c.repo, "worktree", "add", "--detach", old, previousRelease).CombinedOutput(); err != nil {
		t.Fatalf("git worktree add %s: %v\n%s", previousRelease, err, b)
	}
	t.Cleanup(func() { _ = exec.Command("git", "-C", c.repo, "worktree", "remove", "--force", old).Run() })
	release := func(tree, version, out string) (controller, sidecar string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(tree, "hack", "release.sh"), "--registry", reg, "--version", version, "--platforms", "linux/amd64", "--output", out)
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":"+filepath.Dir(c.kubectl), "DDI_CACHE="+c.cacheDir())
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s/hack/release.sh: %v\n%s", tree, err, tail(string(b), 40))
		}
		m, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		controller = regexp.MustCompile(regexp.QuoteMeta(reg) + `/ddi@sha256:[0-9a-f]{64}`).FindString(string(m))
		sidecar = regexp.MustCompile(regexp.QuoteMeta(reg) + `/ddi-sidecar@sha256:[0-9a-f]{64}`).FindString(string(m))
		if controller == "" || sidecar == "" {
			t.Fatalf("%s names no controller or sidecar image by digest", out)
		}
		return controller, sidecar
	}
	oldYAML, newYAML := filepath.Join(dir, "previous.yaml"), filepath.Join(dir, "release.yaml")
	_, oldSidecar := release(old, "v0.0.0-previous", oldYAML)
	newController, newSidecar := release(c.repo, "v0.0.0-e2e", newYAML)

	// From a clean cluster: nothing of an earlier install, no examples.
	// The earlier tests' pods are not under test here: they are removed at
	// once, since their sidecars may have lost their control plane to an
	// uninstall and spend their grace period (Knative's is 300 s) on it.
	for _, ns := range testNamespaces {
		_, _ = c.tryKubectl("", "-n", ns, "delete", "pods", "--all", "--grace-period=0", "--force", "--wait=false")
	}
	c.resetNamespaces(t)
	_, _ = c.tryKubectl("", "delete", "mutatingwebhookconfiguration", "ddi-sidecar-injector", "--ignore-not-found")
	_, _ = c.tryKubectl("", "delete", "servicebindings.servicebinding.io", "--all", "--all-namespaces", "--wait")
	c.kubectlRun(t, "delete", "-f", newYAML, "--ignore-not-found", "--wait")
	t.Cleanup(func() {
		if os.Getenv("DDI_E2E_KEEP") != "1" {
			c.resetNamespaces(t)
		}
	})

	c.kubectlRun(t, "apply", "-f", oldYAML)
	c.kubectlRun(t, "-n", "ddi-system", "rollout", "status", "deploy/ddi-controller", "--timeout=180s")
	eventually(t, time.Minute, "the previous controller to fill the webhook's caBundle", func() (bool, error) {
		out, err := c.tryKubectl("", "get", "mutatingwebhookconfiguration", "ddi-sidecar-injector", "-o", "jsonpath={.webhooks[0].clientConfig.caBundle}")
		return err == nil && out != "", err
	})
	// The previous tree's examples, as a user of that release has them.
	applyOld := func(name string) {
		b, err := os.ReadFile(filepath.Join(old, "examples", "knative", name))
		if err != nil {
			t.Fatal(err)
		}
		c.kubectlIn(t, im.replace(string(b)), "apply", "-f", "-")
	}
	applyOld("namespace.yaml")
	applyOld("greeter.yaml")
	applyOld("frontend.yaml")
	c.kubectlRun(t, "-n", "ddi-demo", "wait", "--for=condition=Ready", "--timeout=180s", "ksvc/greeter")
	applyOld("greeter-provider.yaml")
	c.kubectlRun(t, "-n", "ddi-demo", "wait", "--for=condition=Ready", "--timeout=90s", "provider/greeter")
	c.kubectlRun(t, "-n", "ddi-demo", "wait", "--for=condition=Ready", "--timeout=180s", "ksvc/frontend")
	const frontendHost = "frontend.ddi-demo.example.com"
	route := c.ingress + "/"
	client := &http.Client{Timeout: 30 * time.Second}
	eventually(t, 2*time.Minute, "greeter's answer through frontend's route", func() (bool, error) {
		got := request(client, route, frontendHost)
		return got.ok(), got.err
	})
	before := c.frontendPod(t)
	if img := sidecarImage(&before); img != oldSidecar {
		t.Fatalf("frontend's pod %s runs sidecar %q before the upgrade, want the previous release's %s", before.Name, img, oldSidecar)
	}

	tr := steadyTraffic(route, frontendHost, 2, 50*time.Millisecond)
	began := time.Now()
	c.kubectlRun(t, "apply", "-f", newYAML)
	c.kubectlRun(t, "-n", "ddi-system", "rollout", "status", "deploy/ddi-controller", "--timeout=180s")
	eventually(t, 2*time.Minute, "every controller pod to run the new release", func() (bool, error) {
		for _, p := range c.pods(t, "ddi-system", controllerSelector) {
			if p.Spec.Containers[0].Image != newController || !podReady(&p) {
				return false, fmt.Errorf("pod %s runs %s (ready %v)", p.Name, p.Spec.Containers[0].Image, podReady(&p))
			}
		}
		return true, nil
	})
	upgraded := time.Since(began)
	// The old sidecar rides the controller's replacement on its last
	// snapshot, then reconnects to a new replica.
	eventually(t, time.Minute, "the previous release's sidecar to reconnect to the new controller", func() (bool, error) {
		return c.sidecarMetric(t, before.Name, "ddi_sidecar_control_plane_connected") == 1, nil
	})
	time.Sleep(5 * time.Second)
	calls := tr.halt()
	fails := failures(calls)
	t.Logf("upgrade from %.12s to this tree: controller replaced in %s; %d requests through frontend, %d failed",
		previousRelease, upgraded.Round(100*time.Millisecond), len(calls), len(fails))
	if len(calls) < 20 {
		t.Errorf("only %d requests during the upgrade: the traffic did not run", len(calls))
	}
	if len(fails) > 0 {
		t.Errorf("%d of %d requests failed during the upgrade:\n%s", len(fails), len(calls), describeFailures(fails))
	}

	t.Run("the running pod keeps its sidecar, which works against the new controller", func(t *testing.T) {
		pod := c.frontendPod(t)
		if pod.Name != before.Name || sidecarImage(&pod) != oldSidecar {
			t.Errorf("frontend's pod is %s with sidecar %s; want %s, untouched by the upgrade", pod.Name, sidecarImage(&pod), before.Name)
		}
		if got := request(client, route, frontendHost); !got.ok() {
			t.Errorf("frontend through the previous sidecar after the upgrade: %+v", got)
		}
	})

	t.Run("a new pod gets the new release's sidecar", func(t *testing.T) {
		c.kubectlRun(t, "-n", "ddi-demo", "delete", "pod", before.Name, "--wait=false")
		var pod corev1.Pod
		eventually(t, 3*time.Minute, "a new frontend pod", func() (bool, error) {
			pod = c.frontendPod(t)
			return pod.Name != before.Name, nil
		})
		if img := sidecarImage(&pod); img != newSidecar {
			t.Errorf("new frontend pod %s runs sidecar %q, want the new release's %s", pod.Name, img, newSidecar)
		}
		eventually(t, time.Minute, "greeter's answer through the new pod", func() (bool, error) {
			got := request(client, route, frontendHost)
			return got.ok(), got.err
		})
	})
}

// sidecarImage is the image of a pod's ddi-sidecar container, "" if none.
func sidecarImage(pod *corev1.Pod) string {
	for _, ctr := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		if ctr.Name == "ddi-sidecar" {
			return ctr.Image
		}
	}
	return ""
}
