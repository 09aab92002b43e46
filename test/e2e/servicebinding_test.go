//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// bindingKeys are the files of the "db" binding, the same both ways.
var bindingKeys = []string{"type", "provider", "uri", "host", "port", "database", "username", "password"}

// TestServiceBindingOnCluster runs ddi's Service Binding implementation
// with a real kubelet (test/e2e/testdata/servicebinding.yaml): a
// ServiceBinding into a Deployment, and through ClusterWorkloadResourceMappings
// into a Knative Service and a CronJob, and the same
// dependency as ddi's own Provider for an injected Deployment. It checks
// that both ways give the function the same files, and measures how long a
// Secret change takes to reach the files of a running pod each way (the
// kubelet's refresh of a projected volume; ddi's sidecar), with no restart
// or rollout.
func TestServiceBindingOnCluster(t *testing.T) {
	c := requireCluster(t)
	im := c.buildImages(t)
	c.install(t, im)
	const ns = "sb-e2e"
	mappings := []string{"clusterworkloadresourcemapping/services.serving.knative.dev", "clusterworkloadresourcemapping/cronjobs.batch"}
	c.deleteNamespace(t, ns)
	t.Cleanup(func() {
		c.dumpNamespaceOnFailure(t, ns)
		if os.Getenv("DDI_E2E_KEEP") != "1" {
			c.deleteNamespace(t, ns)
			c.kubectlRun(t, append([]string{"delete", "--ignore-not-found"}, mappings...)...)
		}
	})
	c.apply(t, im, "test/e2e/testdata/servicebinding.yaml")
	c.kubectlRun(t, "-n", ns, "wait", "--for=condition=Ready", "--timeout=120s", "servicebinding/orders-db", "servicebinding/orders-db-ksvc", "servicebinding/orders-db-cron", "provider/orders-db")
	c.kubectlRun(t, "-n", ns, "rollout", "status", "--timeout=180s", "deploy/sb-files", "deploy/ddi-files")
	c.kubectlRun(t, "-n", ns, "wait", "--for=condition=Ready", "--timeout=180s", "ksvc/sb-ksvc")

	client := &http.Client{Timeout: 5 * time.Second}
	sbPod := c.readyPod(t, ns, "app=sb-files", 2*time.Minute)
	ddiPod := c.readyPod(t, ns, "app=ddi-files", 2*time.Minute)
	if !slices.Contains(names(&ddiPod), "ddi-sidecar") {
		t.Fatalf("ddi-files's pod %s has no ddi sidecar: %v", ddiPod.Name, names(&ddiPod))
	}
	sbURL := "http://" + sbPod.Status.PodIP + ":8080"
	ddiURL := "http://" + ddiPod.Status.PodIP + ":8080"
	sbRoot := envValue(t, client, sbURL, "SERVICE_BINDING_ROOT")
	ddiRoot := envValue(t, client, ddiURL, "SERVICE_BINDING_ROOT")

	t.Run("a function sees the same files either way", func(t *testing.T) {
		for _, k := range bindingKeys {
			sb, err := fileValue(client, sbURL, sbRoot+"/db/"+k)
			if err != nil {
				t.Errorf("ServiceBinding: %v", err)
				continue
			}
			dd, err := fileValue(client, ddiURL, ddiRoot+"/db/"+k)
			if err != nil {
				t.Errorf("ddi: %v", err)
				continue
			}
			if sb != dd {
				t.Errorf("file db/%s: %q through the ServiceBinding, %q through ddi's sidecar", k, sb, dd)
			}
		}
	})

	t.Run("a ServiceBinding binds a Knative Service", func(t *testing.T) {
		host := "sb-ksvc." + ns + ".example.com"
		var got string
		eventually(t, 2*time.Minute, "the Knative Service's db/username through its route", func() (bool, error) {
			req, _ := http.NewRequest(http.MethodGet, c.ingress+"/bindings/db/username", nil)
			req.Host = host
			resp, err := client.Do(req)
			if err != nil {
				return false, err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = string(b)
			return resp.StatusCode == http.StatusOK && got == "orders", fmt.Errorf("GET /bindings/db/username = %d %q", resp.StatusCode, b)
		})
	})

	t.Run("a ServiceBinding binds a CronJob through a mapping", func(t *testing.T) {
		c.kubectlRun(t, "-n", ns, "create", "job", "reports-now", "--from=cronjob/reports")
		pod := c.readyPod(t, ns, "job-name=reports-now", 2*time.Minute)
		base := "http://" + pod.Status.PodIP + ":8080"
		root := envValue(t, client, base, "SERVICE_BINDING_ROOT")
		if got, err := fileValue(client, base, root+"/db/username"); err != nil || got != "orders" {
			t.Errorf("the Job's file db/username = %q, %v; want orders", got, err)
		}
	})

	t.Run("a Secret change reaches running pods without a rollout", func(t *testing.T) {
		const rounds, kubeletRounds = 20, 3
		var viaDDI, viaKubelet latencies
		for i := range rounds {
			value := fmt.Sprintf("rotated-%d-%d", time.Now().UnixNano(), i)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			sec, err := c.cs.CoreV1().Secrets(ns).Get(ctx, "orders-db", metav1.GetOptions{})
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			sec.Data["password"] = []byte(value)
			start := time.Now()
			_, err = c.cs.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			ddiDone := waitFile(client, ddiURL, ddiRoot+"/db/password", value, 10*time.Second)
			if ddiDone.IsZero() {
				t.Fatalf("round %d: ddi's file db/password did not change within 10 s", i)
			}
			viaDDI = append(viaDDI, ddiDone.Sub(start))
			if i < kubeletRounds {
				kDone := waitFile(client, sbURL, sbRoot+"/db/password", value, 4*time.Minute)
				if kDone.IsZero() {
					t.Fatalf("round %d: the ServiceBinding's file db/password did not change within 4 minutes", i)
				}
				viaKubelet = append(viaKubelet, kDone.Sub(start))
			}
		}
		t.Logf("Secret change to file in a running pod: ddi's sidecar %v; the kubelet's projected volume (ServiceBinding) %v", viaDDI, viaKubelet)
		for _, p := range []struct{ name, sel string }{{"sb-files", "app=sb-files"}, {"ddi-files", "app=ddi-files"}} {
			pods := c.pods(t, ns, p.sel)
			if len(pods) != 1 || restarts(&pods[0]) != 0 || (p.name == "sb-files" && pods[0].Name != sbPod.Name) || (p.name == "ddi-files" && pods[0].Name != ddiPod.Name) {
				t.Errorf("%s: the Secret changes restarted or replaced its pod (pods now: %d, first %s)", p.name, len(pods), pods[0].Name)
			}
		}
	})
}

// envValue reads a variable of the generic test application's environment.
func envValue(t *testing.T, client *http.Client, base, name string) string {
	t.Helper()
	v, err := fileValue(client, base, "/env/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Trim(strings.TrimSpace(v), `"`)
}

// fileValue GETs a path of the generic test application.
func fileValue(client *http.Client, base, path string) (string, error) {
	resp, err := client.Get(base + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s%s = %d %q", base, path, resp.StatusCode, b)
	}
	return string(b), nil
}

// waitFile polls a file every 10 ms until it holds want, and returns when
// it first did; the zero time if it did not within timeout.
func waitFile(client *http.Client, base, path, want string, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if v, err := fileValue(client, base, path); err == nil && v == want {
			return time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}
}

// deleteNamespace deletes ns and waits until it is gone.
func (c *localCluster) deleteNamespace(t *testing.T, ns string) {
	t.Helper()
	c.kubectlRun(t, "delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=180s")
}

// dumpNamespaceOnFailure logs what a failed test left in ns.
func (c *localCluster) dumpNamespaceOnFailure(t *testing.T, ns string) {
	if !t.Failed() {
		return
	}
	out, _ := c.tryKubectl("", "-n", ns, "get", "all,servicebindings,providers,events", "-o", "wide")
	t.Logf("namespace %s:\n%s", ns, tail(out, 80))
}
