//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"sigs.k8s.io/yaml"
)

// The namespaces the Knative test owns; it deletes them before it starts
// and when it ends (unless DDI_E2E_KEEP=1).
var testNamespaces = []string{"ddi-demo", "openfaas-fn", "fission-function"}

// localCluster is the running cluster of hack/cluster.sh as the test sees
// it. The test uses that cluster only, never $KUBECONFIG: it pushes
// images to the cluster's registry, which exists only there.
type localCluster struct {
	repo       string
	state      string // DDI_CLUSTER_STATE: kubeconfig, logs
	kubeconfig string
	kubectl    string
	ingress    string // the KIngress for public routes, http://127.0.0.1:31080
	cfg        *rest.Config
	cs         kubernetes.Interface
}

// requireCluster returns the local cluster, or skips the test naming the
// capability that is missing.
func requireCluster(t *testing.T) *localCluster {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("skipped: the local Kubernetes cluster (hack/cluster.sh) runs on Linux only")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: not root; the test pushes images to the cluster's registry and reads pod cgroups (run hack/e2e.sh as root)")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	state := os.Getenv("DDI_CLUSTER_STATE")
	if state == "" {
		state = "/var/lib/ddi-cluster"
	}
	c := &localCluster{repo: repo, state: state, kubeconfig: filepath.Join(state, "kubeconfig"), ingress: "http://127.0.0.1:31080"}
	if p := os.Getenv("DDI_CLUSTER_INGRESS_PORT"); p != "" {
		c.ingress = "http://127.0.0.1:" + p
	}
	if _, err := os.Stat(c.kubeconfig); err != nil {
		t.Skipf("skipped: no local cluster (%s is missing); bring one up with `sudo hack/cluster.sh up`, or run hack/e2e.sh, which brings it up and down", c.kubeconfig)
	}
	if c.kubectl, err = exec.LookPath("kubectl"); err != nil {
		c.kubectl = filepath.Join(repo, ".cache", "kube", "v1.37.2", "kubectl")
		if _, err := os.Stat(c.kubectl); err != nil {
			t.Skip("skipped: no kubectl on PATH nor in .cache/kube (hack/kube-bins.sh builds it)")
		}
	}
	if c.cfg, err = clientcmd.BuildConfigFromFlags("", c.kubeconfig); err != nil {
		t.Fatalf("kubeconfig %s: %v", c.kubeconfig, err)
	}
	c.cfg.QPS, c.cfg.Burst = 50, 100
	if c.cs, err = kubernetes.NewForConfig(c.cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Skipf("skipped: the local cluster's API server does not answer (%v); `sudo hack/cluster.sh status` says why, `sudo hack/cluster.sh up` starts it", err)
	}
	if _, err := c.cs.Discovery().ServerResourcesForGroupVersion("serving.knative.dev/v1"); err != nil {
		t.Skipf("skipped: Knative Serving is not installed in the local cluster (%v); bring the cluster up without DDI_CLUSTER_KNATIVE=0", err)
	}
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(c.ingress, "http://"), 2*time.Second); err != nil {
		t.Skipf("skipped: nothing listens on the KIngress %s (%v); see kingress.log in the cluster state folder", c.ingress, err)
	} else {
		conn.Close()
	}
	return c
}

// kubectl runs kubectl against the cluster with stdin and returns stdout;
// it fails the test on an error.
func (c *localCluster) kubectlIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := c.tryKubectl(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *localCluster) kubectlRun(t *testing.T, args ...string) string {
	t.Helper()
	return c.kubectlIn(t, "", args...)
}

func (c *localCluster) tryKubectl(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// images are the references of the images built for this run.
type images struct {
	ddi, sidecar, greeter, frontend string
	// genericapp is the Service Binding conformance suite's stand-in
	// generic test application (test/servicebinding/genericapp).
	genericapp string
}

// replace points the manifests' :dev images at this run's builds.
func (im images) replace(manifest string) string {
	return strings.NewReplacer(
		"ddi.local/ddi:dev", im.ddi,
		"ddi.local/ddi-sidecar:dev", im.sidecar,
		"ddi.local/greeter:dev", im.greeter,
		"ddi.local/frontend:dev", im.frontend,
		"ddi.local/genericapp:dev", im.genericapp,
	).Replace(manifest)
}

// buildImages builds ddi (full, for the controller), ddi -tags nokube
// (the sidecar) and the two example functions, and pushes them with
// hack/cluster.sh image. Each tag is derived from its binary, so a new
// build gets a new tag and an unchanged one is not rolled out again.
func (c *localCluster) buildImages(t *testing.T) images {
	t.Helper()
	cache := c.cacheDir()
	out := filepath.Join(cache, "e2e")
	p := os.Getenv("DDI_BUILD_P")
	if p == "" {
		p = "2"
	}
	type build struct {
		repo, dir, pkg, bin string
		tags                string
		flags               []string
	}
	builds := []build{
		{repo: "ddi", dir: c.repo, pkg: "./cmd/ddi", bin: filepath.Join(out, "ddi", "ddi")},
		{repo: "ddi-sidecar", dir: c.repo, pkg: "./cmd/ddi", bin: filepath.Join(out, "ddi-sidecar", "ddi"), tags: "nokube"},
		{repo: "greeter", dir: filepath.Join(c.repo, "examples"), pkg: "./greeter", bin: filepath.Join(out, "greeter", "greeter"), flags: []string{"-port", "8080"}},
		{repo: "frontend", dir: filepath.Join(c.repo, "examples"), pkg: "./frontend", bin: filepath.Join(out, "frontend", "frontend"), flags: []string{"-port", "8080"}},
		{repo: "genericapp", dir: c.repo, pkg: "./test/servicebinding/genericapp", bin: filepath.Join(out, "genericapp", "genericapp"), flags: []string{"-port", "8080"}},
	}
	refs := map[string]string{}
	for _, b := range builds {
		args := []string{"build", "-p", p, "-trimpath", "-ldflags=-s -w", "-o", b.bin}
		if b.tags != "" {
			args = append(args, "-tags", b.tags)
		}
		cmd := exec.Command("go", append(args, b.pkg)...)
		cmd.Dir = b.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s (%s): %v\n%s", b.pkg, b.repo, err, out)
		}
		data, err := os.ReadFile(b.bin)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		tag := hex.EncodeToString(sum[:])[:12]
		ref := "ddi.local/" + b.repo + ":" + tag
		cmd = exec.Command(filepath.Join(c.repo, "hack", "cluster.sh"), append([]string{"image", ref, b.bin}, b.flags...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("hack/cluster.sh image %s: %v\n%s", ref, err, out)
		}
		refs[b.repo] = ref
		pruneImageTarballs(t, filepath.Join(cache, "cluster", "images"), b.repo, tag)
	}
	im := images{ddi: refs["ddi"], sidecar: refs["ddi-sidecar"], greeter: refs["greeter"], frontend: refs["frontend"], genericapp: refs["genericapp"]}
	t.Logf("images: %s %s %s %s %s", im.ddi, im.sidecar, im.greeter, im.frontend, im.genericapp)
	return im
}

// cacheDir is the build cache ($DDI_CACHE, else the repository's .cache);
// buildImages leaves the ddi binary at cacheDir()/e2e/ddi/ddi.
func (c *localCluster) cacheDir() string {
	if d := os.Getenv("DDI_CACHE"); d != "" {
		return d
	}
	return filepath.Join(c.repo, ".cache")
}

// pruneImageTarballs removes the tarballs of earlier builds of repo, which
// every `hack/cluster.sh up` would otherwise push again.
func pruneImageTarballs(t *testing.T, dir, repo, keepTag string) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "ddi.local_"+repo+"_*.tar*"))
	keep := "ddi.local_" + repo + "_" + keepTag + ".tar"
	for _, m := range matches {
		if base := filepath.Base(m); base != keep && base != keep+".stamp" {
			_ = os.Remove(m)
		}
	}
}

// install applies deploy/overlays/local with this run's images and
// deploy/'s replica count, waits for the controller, and checks that the
// API server calls the webhook.
func (c *localCluster) install(t *testing.T, im images) {
	t.Helper()
	base := c.kubectlRun(t, "kustomize", filepath.Join(c.repo, "deploy"))
	overlay := c.kubectlRun(t, "kustomize", "--load-restrictor=LoadRestrictionsNone", filepath.Join(c.repo, "deploy", "overlays", "local"))
	if b, o := objectKeys(t, base), objectKeys(t, overlay); !slices.Equal(b, o) {
		t.Fatalf("deploy/overlays/local renders other objects than deploy/ (keep its resource list in step with deploy/kustomization.yaml):\nbase:    %v\noverlay: %v", b, o)
	}
	overlay = withBaseReplicas(t, base, overlay)
	c.kubectlIn(t, im.replace(overlay), "apply", "-f", "-")
	c.kubectlRun(t, "-n", "ddi-system", "rollout", "status", "deploy/ddi-controller", "--timeout=180s")
	eventually(t, 60*time.Second, "the controller to fill the webhook's caBundle", func() (bool, error) {
		out, err := c.tryKubectl("", "get", "mutatingwebhookconfiguration", "ddi-sidecar-injector", "-o", "jsonpath={.webhooks[0].clientConfig.caBundle}")
		return err == nil && out != "", err
	})
}

// controllerDeployment is the Deployment of deploy/controller.
const controllerDeployment = "ddi-controller"

// withBaseReplicas returns overlay with its controller Deployment's
// replica count set to base's: the test runs the replicas deploy/ ships
// (two, electing a leader), whatever the local overlay says.
func withBaseReplicas(t *testing.T, base, overlay string) string {
	t.Helper()
	var replicas any
	for doc := range strings.SplitSeq(base, "\n---\n") {
		if o := controllerObject(t, doc); o != nil {
			replicas = o["spec"].(map[string]any)["replicas"]
		}
	}
	if replicas == nil {
		t.Fatalf("deploy/ renders no Deployment %s with spec.replicas", controllerDeployment)
	}
	docs := strings.Split(overlay, "\n---\n")
	for i, doc := range docs {
		o := controllerObject(t, doc)
		if o == nil {
			continue
		}
		o["spec"].(map[string]any)["replicas"] = replicas
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		docs[i] = strings.TrimRight(string(b), "\n")
		t.Logf("controller Deployment: %v replicas, as deploy/ ships it", replicas)
		return strings.Join(docs, "\n---\n")
	}
	t.Fatalf("deploy/overlays/local renders no Deployment %s", controllerDeployment)
	return ""
}

// controllerObject decodes doc when it is the controller Deployment (with
// a spec), else returns nil.
func controllerObject(t *testing.T, doc string) map[string]any {
	t.Helper()
	var o map[string]any
	if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
		t.Fatalf("rendered manifest: %v", err)
	}
	meta, _ := o["metadata"].(map[string]any)
	if _, ok := o["spec"].(map[string]any); !ok || o["kind"] != "Deployment" || meta["name"] != controllerDeployment {
		return nil
	}
	return o
}

// objectKeys lists kind/namespace/name of every object in a YAML stream.
func objectKeys(t *testing.T, stream string) []string {
	t.Helper()
	var keys []string
	for doc := range strings.SplitSeq(stream, "\n---\n") {
		var o struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered manifest: %v", err)
		}
		if o.Kind != "" {
			keys = append(keys, o.Kind+"/"+o.Metadata.Namespace+"/"+o.Metadata.Name)
		}
	}
	slices.Sort(keys)
	return keys
}

// apply applies a manifest file of the repository with this run's images.
func (c *localCluster) apply(t *testing.T, im images, path string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.repo, path))
	if err != nil {
		t.Fatal(err)
	}
	c.kubectlIn(t, im.replace(string(data)), "apply", "-f", "-")
}

// resetNamespaces deletes the test's namespaces and waits until they are
// gone. It deletes their workloads first and waits for the pods: a
// namespace deleted while Knative pods terminate (queue-proxy drains for
// 30 s, and the grace period is the revision's 300 s timeout) is only
// looked at again minutes later by the namespace controller.
func (c *localCluster) resetNamespaces(t *testing.T) {
	t.Helper()
	ctx := context.Background() // also runs in Cleanup, after ctx ends
	var present []string
	for _, ns := range testNamespaces {
		n, err := c.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			continue
		}
		present = append(present, ns)
		if n.DeletionTimestamp == nil {
			c.kubectlRun(t, "-n", ns, "delete", "ksvc,deployments,pods", "--all", "--wait=false")
		}
	}
	if len(present) == 0 {
		return
	}
	eventually(t, 3*time.Minute, "the pods of the test namespaces to go", func() (bool, error) {
		for _, ns := range present {
			list, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil || len(list.Items) > 0 {
				return false, err
			}
		}
		return true, nil
	})
	c.kubectlRun(t, append([]string{"delete", "namespace", "--ignore-not-found", "--wait=false"}, present...)...)
	eventually(t, 3*time.Minute, "the test namespaces to be deleted", func() (bool, error) {
		for _, ns := range present {
			if _, err := c.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
				return false, nil
			}
		}
		return true, nil
	})
}

// eventually polls cond every 250ms until it is true or timeout passes,
// then fails naming what it waited for and cond's last error.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// pods lists the pods of ns matching selector that are not being deleted.
func (c *localCluster) pods(t *testing.T, ns, selector string) []corev1.Pod {
	t.Helper()
	list, err := c.cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list pods %s in %s: %v", selector, ns, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// controllerSelector selects the controller's pods.
const controllerSelector = "app.kubernetes.io/name=ddi,app.kubernetes.io/component=controller"

// controllerReplicas is the controller Deployment's spec.replicas.
func (c *localCluster) controllerReplicas(t *testing.T) int {
	t.Helper()
	d, err := c.cs.AppsV1().Deployments("ddi-system").Get(t.Context(), controllerDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("controller Deployment: %v", err)
	}
	if d.Spec.Replicas == nil {
		return 1
	}
	return int(*d.Spec.Replicas)
}

// readyControllers waits until exactly n controller pods, none being
// deleted, are ready, and returns them.
func (c *localCluster) readyControllers(t *testing.T, n int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	var ready []corev1.Pod
	eventually(t, timeout, fmt.Sprintf("%d ready controller pods", n), func() (bool, error) {
		ready = nil
		for _, p := range c.pods(t, "ddi-system", controllerSelector) {
			if podReady(&p) {
				ready = append(ready, p)
			}
		}
		return len(ready) == n, nil
	})
	return ready
}

// leaseHolder returns the pod named by the controller's leader election
// Lease ("" when it names none). controller-runtime's holderIdentity is
// the host name, which in a pod is the pod's name, "_" and a random
// suffix.
func (c *localCluster) leaseHolder(t *testing.T) (string, error) {
	t.Helper()
	l, err := c.cs.CoordinationV1().Leases("ddi-system").Get(t.Context(), "ddi-controller", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	name, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
	return name, nil
}

// readyPod waits for exactly one running, ready pod matching selector.
func (c *localCluster) readyPod(t *testing.T, ns, selector string, timeout time.Duration) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	eventually(t, timeout, "one ready pod "+selector+" in "+ns, func() (bool, error) {
		ps := c.pods(t, ns, selector)
		if len(ps) != 1 || !podReady(&ps[0]) {
			return false, nil
		}
		pod = ps[0]
		return true, nil
	})
	return pod
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// sidecarGet sends GET path to the ddi sidecar of a pod, which listens on
// the pod's loopback only, through a port-forward.
func (c *localCluster) sidecarGet(t *testing.T, ns, pod, path string) (int, []byte, error) {
	t.Helper()
	base, stop, err := c.portForward(t.Context(), ns, pod, 7471)
	if err != nil {
		return 0, nil, err
	}
	defer stop()
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(base + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// portForward forwards a local port to port in the pod's network
// namespace and returns the local base URL.
func (c *localCluster) portForward(ctx context.Context, ns, pod string, port int) (string, func(), error) {
	u, err := url.Parse(c.cfg.Host)
	if err != nil {
		return "", nil, err
	}
	u.Path = fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/portforward", ns, pod)
	tr, upgrader, err := spdy.RoundTripperFor(c.cfg)
	if err != nil {
		return "", nil, err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, http.MethodPost, u)
	stopCh, readyCh := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stopCh, readyCh, io.Discard, io.Discard)
	if err != nil {
		return "", nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	select {
	case <-readyCh:
	case err := <-errc:
		return "", nil, fmt.Errorf("port-forward to %s/%s:%d: %w", ns, pod, port, err)
	case <-time.After(15 * time.Second):
		close(stopCh)
		return "", nil, fmt.Errorf("port-forward to %s/%s:%d: not ready within 15s", ns, pod, port)
	case <-ctx.Done():
		close(stopCh)
		return "", nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		close(stopCh)
		return "", nil, errors.Join(err, errors.New("port-forward: no local port"))
	}
	return fmt.Sprintf("http://127.0.0.1:%d", ports[0].Local), func() { close(stopCh) }, nil
}

// containerLogs returns a container's log with kubelet timestamps.
func (c *localCluster) containerLogs(t *testing.T, ns, pod, container string) string {
	t.Helper()
	b, err := c.cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Timestamps: true}).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("logs of %s/%s %s: %v", ns, pod, container, err)
	}
	return string(b)
}

// dumpOnFailure logs the state of the test namespaces and the controller
// when the test failed, for whoever reads the CI log.
func (c *localCluster) dumpOnFailure(t *testing.T) {
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", "pods,ksvc,revisions,providers,dependencysets", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"-n", "ddi-system", "logs", "-l", controllerSelector, "--prefix", "--tail=80"},
		{"-n", "ddi-system", "get", "lease", "ddi-controller", "-o", "yaml"},
	} {
		out, err := c.tryKubectl("", args...)
		t.Logf("--- kubectl %s ---\n%s%v", strings.Join(args, " "), tail(out, 120), errOrEmpty(err))
	}
	for _, ns := range testNamespaces {
		list, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, p := range list.Items {
			for _, ct := range append(p.Spec.InitContainers, p.Spec.Containers...) {
				b, _ := c.cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: ct.Name, Timestamps: true}).DoRaw(ctx)
				t.Logf("--- logs %s/%s %s ---\n%s", ns, p.Name, ct.Name, tail(string(b), 30))
			}
		}
	}
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// viewerKubeconfig writes a kubeconfig for the local cluster whose user is
// the ServiceAccount default/ddi-e2e-viewer with a fresh token and the
// permissions docs/kubernetes.md lists for a person who looks at the graph
// (testdata/viewer.yaml); the CLI refuses client certificates, which the
// admin kubeconfig uses.
func (c *localCluster) viewerKubeconfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.repo, "test", "e2e", "testdata", "viewer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.kubectlIn(t, string(b), "apply", "-f", "-")
	token := strings.TrimSpace(c.kubectlRun(t, "-n", "default", "create", "token", "ddi-e2e-viewer", "--duration=1h"))
	cfg, err := clientcmd.LoadFromFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil {
		t.Fatalf("kubeconfig %s has no current context", c.kubeconfig)
	}
	cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{"ddi-e2e-viewer": {Token: token}}
	ctx.AuthInfo = "ddi-e2e-viewer"
	path := filepath.Join(t.TempDir(), "viewer.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
