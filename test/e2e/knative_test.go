//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"ddi.dev/ddi/internal/protocol"
)

// TestKnative proves ddi on a real single-node Kubernetes with Knative
// Serving (hack/cluster.sh): it builds the images from this tree, installs
// ddi from deploy/overlays/local, runs the example functions of
// examples/knative, examples/openfaas and examples/fission, and checks
// each claim of docs/platforms.md on the running pods; it also restarts
// kube-apiserver, etcd and containerd in place under steady traffic
// (clusterchaos_test.go, docs/reliability.md). It needs root and a running
// local cluster, and skips otherwise; hack/e2e.sh brings the cluster up,
// runs it and brings the cluster down.
//
// Settings: DDI_E2E_LATENCY_REQUESTS (per path, default 500),
// DDI_E2E_COLD_ROUNDS (default 10), DDI_E2E_REPORT (write the measurements
// as JSON to this file), DDI_E2E_KEEP=1 (leave the namespaces behind, as
// hack/e2e.sh does before it brings the cluster down).
func TestKnative(t *testing.T) {
	c := requireCluster(t)
	began := time.Now()
	rep := report{Started: began.UTC().Format(time.RFC3339)}
	defer rep.write(t)

	im := c.buildImages(t)
	rep.Steps = append(rep.Steps, step("build and push images", began))
	t0 := time.Now()
	c.install(t, im)
	rep.Steps = append(rep.Steps, step("install ddi (deploy/overlays/local)", t0))
	t.Cleanup(func() {
		c.dumpOnFailure(t)
		if os.Getenv("DDI_E2E_KEEP") != "1" {
			c.resetNamespaces(t)
		}
	})

	t0 = time.Now()
	c.resetNamespaces(t)
	c.apply(t, im, "examples/knative/namespace.yaml")
	c.apply(t, im, "examples/knative/greeter.yaml")
	c.apply(t, im, "examples/knative/frontend.yaml")
	c.apply(t, im, "test/e2e/testdata/coldstart.yaml")
	c.apply(t, im, "examples/openfaas/function.yaml")
	c.apply(t, im, "examples/fission/poolmgr.yaml")
	c.kubectlRun(t, "-n", "ddi-demo", "wait", "--for=condition=Ready", "--timeout=180s", "ksvc/greeter")
	c.apply(t, im, "examples/knative/greeter-provider.yaml")
	c.kubectlRun(t, "-n", "ddi-demo", "wait", "--for=condition=Ready", "--timeout=90s", "provider/greeter")
	// The Provider names no version: it follows greeter's revisions, and
	// publishes the ddi.dev/version of the one Knative routes to.
	v1rev := c.kubectlRun(t, "-n", "ddi-demo", "get", "ksvc", "greeter", "-o", "jsonpath={.status.latestReadyRevisionName}")
	eventually(t, time.Minute, "Provider greeter to publish version 1.0.0 of revision "+v1rev, func() (bool, error) {
		out, err := c.tryKubectl("", "-n", "ddi-demo", "get", "provider", "greeter", "-o", "jsonpath={.status.version} {.status.revision}")
		return err == nil && out == "1.0.0 "+v1rev, fmt.Errorf("status version and revision %q", out)
	})
	c.kubectlRun(t, "-n", "ddi-demo", "wait", "--for=condition=Ready", "--timeout=180s", "ksvc/frontend", "ksvc/cold-ddi", "ksvc/cold-ddi-native", "ksvc/cold-ddi-container", "ksvc/cold-plain", "ksvc/cold-floor")
	rep.Steps = append(rep.Steps, step("deploy the functions", t0))

	const frontendHost = "frontend.ddi-demo.example.com"
	// greeterToken is the Secret examples/knative/greeter-provider.yaml
	// references.
	const greeterToken = "greeter-token-5e1f0c9a"
	route := c.ingress + "/"
	client := &http.Client{Timeout: 30 * time.Second}

	t.Run("webhook injects the ordered sidecar into Knative pods", func(t *testing.T) {
		pod := c.frontendPod(t)
		checkInjected(t, &pod, []string{"user-container"}, []string{"queue-proxy"})
		// What a cluster's Prometheus sees: the annotations, and the
		// sidecar's metrics-only listener on the pod IP.
		if pod.Annotations["prometheus.io/scrape"] != "true" || pod.Annotations["prometheus.io/port"] != "9471" {
			t.Errorf("frontend's pod lacks the prometheus.io annotations: %v", pod.Annotations)
		}
		base := "http://" + pod.Status.PodIP + ":9471"
		resp, err := client.Get(base + "/metrics")
		if err != nil {
			t.Fatalf("scrape the sidecar's metrics from the node: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "ddi_sidecar_control_plane_connected 1") {
			t.Errorf("GET %s/metrics = %d, want 200 with ddi_sidecar_control_plane_connected 1:\n%.500s", base, resp.StatusCode, body)
		}
		if resp, err := client.Get(base + "/v1/bindings"); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s/v1/bindings = %v, %v; want 404: the API stays on loopback", base, resp, err)
		} else {
			resp.Body.Close()
		}
	})

	t.Run("frontend's route reaches greeter through the sidecar", func(t *testing.T) {
		pod := c.frontendPod(t)
		before := c.invokeCount(t, pod.Name)
		var got call
		eventually(t, time.Minute, "greeter's answer through frontend's route", func() (bool, error) {
			got = request(client, route, frontendHost)
			return got.ok(), got.err
		})
		rev := c.kubectlRun(t, "-n", "ddi-demo", "get", "ksvc", "greeter", "-o", "jsonpath={.status.latestReadyRevisionName}")
		if got.answer.Version != "1.0.0" || got.answer.Revision != rev {
			t.Errorf("GET / through frontend = %+v, want greeter 1.0.0 from revision %s", got.answer, rev)
		}
		if after := c.invokeCount(t, pod.Name); after <= before {
			t.Errorf("sidecar's ddi_sidecar_invoke_total{dependency=greeter,result=ok} = %d after the request, %d before: the request did not go through /v1/invoke", after, before)
		}
	})

	t.Run("ddi status through the kubeconfig lists the sidecars of every replica", func(t *testing.T) {
		// The CLI port-forwards to a controller pod with the kubeconfig's
		// credentials (docs/kubernetes.md); that replica asks the others.
		want := c.controllerReplicas(t)
		ddi := filepath.Join(c.cacheDir(), "e2e", "ddi", "ddi")
		kubeconfig := c.viewerKubeconfig(t)
		var list protocol.SidecarList
		eventually(t, time.Minute, "ddi status to list frontend's sidecar and every replica", func() (bool, error) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ddi, "--kubeconfig", kubeconfig, "status", "-o", "json")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return false, fmt.Errorf("ddi status: %v: %s", err, stderr.String())
			}
			list = protocol.SidecarList{}
			if err := json.Unmarshal(out, &list); err != nil {
				return false, err
			}
			sum := 0
			for _, r := range list.Replicas {
				if r.Error != "" {
					return false, fmt.Errorf("replica %s: %s", r.Name, r.Error)
				}
				sum += r.Sidecars
			}
			frontend := slices.ContainsFunc(list.Sidecars, func(s protocol.SidecarStatus) bool {
				return s.Consumer.Namespace == "ddi-demo" && strings.HasPrefix(s.Consumer.Name, "frontend")
			})
			return len(list.Replicas) == want && sum == len(list.Sidecars) && frontend,
				fmt.Errorf("replicas %+v, %d sidecars, frontend's among them: %v", list.Replicas, len(list.Sidecars), frontend)
		})
		t.Logf("ddi status: %d sidecars from replicas %+v", len(list.Sidecars), list.Replicas)
	})

	t.Run("binding files in frontend's container hold greeter's address", func(t *testing.T) {
		addr := c.kubectlRun(t, "-n", "ddi-demo", "get", "ksvc", "greeter", "-o", "jsonpath={.status.address.url}")
		files := bindingFiles(t, client, route, frontendHost)
		want := map[string]string{
			"greeter/type":     "http",
			"greeter/provider": "greeter",
			"greeter/uri":      addr,
			"greeter/host":     strings.TrimPrefix(addr, "http://"),
			"greeter/port":     "80",
			// A secret file (mode 0640, group = the pod's fsGroup), read by
			// frontend running as user 1000, not the sidecar's 65532.
			"greeter/token": greeterToken,
		}
		for k, v := range want {
			if files[k] != v {
				t.Errorf("binding file %s = %q, want %q (all files: %v)", k, files[k], v, files)
			}
		}
	})

	t.Run("greeter's token appears in no log, Event or status", func(t *testing.T) {
		pod := c.frontendPod(t)
		places := map[string]string{
			"frontend's sidecar log":       c.containerLogs(t, "ddi-demo", pod.Name, "ddi-sidecar"),
			"Events":                       c.kubectlRun(t, "get", "events", "-A", "-o", "json"),
			"Providers and DependencySets": c.kubectlRun(t, "get", "providers.ddi.dev,dependencysets.ddi.dev", "-A", "-o", "json"),
		}
		for _, p := range c.pods(t, "ddi-system", controllerSelector) {
			places["controller log "+p.Name] = c.containerLogs(t, "ddi-system", p.Name, "controller")
		}
		for where, text := range places {
			if strings.Contains(text, greeterToken) {
				t.Errorf("greeter's token appears in %s", where)
			}
		}
	})

	t.Run("OpenFaaS-shaped function resolves its dependency", func(t *testing.T) {
		pod := c.readyPod(t, "openfaas-fn", "faas_function=greet", 2*time.Minute)
		checkInjected(t, &pod, []string{"greet"}, nil)
		if !hasMount(&pod, "greet", "/var/openfaas/secrets") {
			t.Error("the function lost its OpenFaaS secrets mount")
		}
		var got call
		eventually(t, time.Minute, "greeter's answer through the OpenFaaS-shaped function", func() (bool, error) {
			got = request(client, "http://"+pod.Status.PodIP+":8080/", "")
			return got.ok(), got.err
		})
		t.Logf("openfaas-fn/greet -> ddi-demo/greeter: %+v", got.answer)
	})

	t.Run("Fission-shaped pool pod resolves its dependency once specialised", func(t *testing.T) {
		pod := c.readyPod(t, "fission-function", "executorType=poolmgr,managed=true", 2*time.Minute)
		checkInjected(t, &pod, []string{"go"}, []string{"fetcher"})
		url := "http://" + pod.Status.PodIP + ":8888/"
		if got := request(client, url, ""); got.status != http.StatusNotFound || !strings.Contains(fmt.Sprint(got.err), "unknown-dependency") {
			t.Errorf("GET / on the generic pool pod = %d %v, want 404 unknown-dependency (a pool pod serves no function yet)", got.status, got.err)
		}
		// Specialise it the way Fission's pool manager does: relabel.
		patch := `{"metadata":{"labels":{"functionName":"greet","functionUid":"6a0f9d4e-1c1e-4d47-9a51-000000000002","managed":"false"}}}`
		start := time.Now()
		if _, err := c.cs.CoreV1().Pods("fission-function").Patch(t.Context(), pod.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		var got call
		eventually(t, 90*time.Second, "greeter's answer through the specialised pool pod", func() (bool, error) {
			got = request(client, url, "")
			return got.ok(), got.err
		})
		rep.FissionReidentify = time.Since(start).Round(10 * time.Millisecond).String()
		t.Logf("pool pod specialised as greet; bound to greeter %s after %s", got.answer.Version, rep.FissionReidentify)
	})

	t.Run("run-time registration through a sidecar", func(t *testing.T) {
		c.apply(t, im, "test/e2e/testdata/registration.yaml")
		c.kubectlRun(t, "-n", "ddi-demo", "wait", "--for=condition=Ready", "--timeout=120s", "pod/registrar", "pod/consumer")
		registrar, err := c.cs.CoreV1().Pods("ddi-demo").Get(t.Context(), "registrar", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var prov struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
			Spec     struct {
				Lease *struct {
					TTL string `json:"ttl"`
				} `json:"lease"`
			} `json:"spec"`
		}
		eventually(t, time.Minute, "provider greeter-live registered by the registrar's sidecar", func() (bool, error) {
			out, err := c.tryKubectl("", "-n", "ddi-demo", "get", "provider", "greeter-live", "-o", "json")
			if err != nil {
				return false, err
			}
			return true, json.Unmarshal([]byte(out), &prov)
		})
		if refs := prov.Metadata.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Pod" || refs[0].UID != registrar.UID {
			t.Errorf("greeter-live ownerReferences = %+v, want the registrar pod %s", refs, registrar.UID)
		}
		if prov.Spec.Lease == nil {
			t.Error("greeter-live has no lease: it is not a run-time registration")
		}
		consumer, err := c.cs.CoreV1().Pods("ddi-demo").Get(t.Context(), "consumer", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + consumer.Status.PodIP + ":8080/"
		var got call
		eventually(t, time.Minute, "the consumer to reach greeter-live", func() (bool, error) {
			got = request(client, url, "")
			return got.ok(), got.err
		})
		if got.answer.Pod != "registrar" || got.answer.Version != "3.0.0" {
			t.Errorf("consumer's GET / = %+v, want greeter 3.0.0 from pod registrar", got.answer)
		}

		start := time.Now()
		if err := c.cs.CoreV1().Pods("ddi-demo").Delete(t.Context(), "registrar", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "provider greeter-live to go with its pod", func() (bool, error) {
			_, err := c.tryKubectl("", "-n", "ddi-demo", "get", "provider", "greeter-live")
			return err != nil && strings.Contains(err.Error(), "NotFound"), nil
		})
		gone := time.Since(start)
		eventually(t, time.Minute, "the consumer to see greeter-live unresolved", func() (bool, error) {
			got = request(client, url, "")
			return got.status == http.StatusNotFound && strings.Contains(fmt.Sprint(got.err), "unresolved"), nil
		})
		rep.RegistrationGone = gone.Round(10 * time.Millisecond).String()
		t.Logf("registration removed %s after the pod's deletion; the consumer then answers %v", rep.RegistrationGone, got.err)
	})

	t.Run("latency through the sidecar and sidecar memory", func(t *testing.T) {
		pod := c.frontendPod(t)
		n := envInt(t, "DDI_E2E_LATENCY_REQUESTS", 500)
		base := "http://" + pod.Status.PodIP + ":8080"
		lc := &http.Client{Timeout: 10 * time.Second}
		// Requests to the pod's address bypass Knative's queue-proxy, so
		// the autoscaler would see no traffic and scale frontend to zero
		// under the measurement: keep a trickle going through the route.
		warm := steadyTraffic(route, frontendHost, 1, 500*time.Millisecond)
		defer warm.halt()
		for range 50 { // warm up connections on every hop
			request(lc, base+"/", "")
			request(lc, base+"/direct", "")
		}
		var viaDDI, direct latencies
		for i := range 2 * n {
			path := "/"
			if i%2 == 1 {
				path = "/direct"
			}
			cl := request(lc, base+path, "")
			if !cl.ok() {
				t.Fatalf("GET %s on frontend's pod: %v", path, cl.err)
			}
			if path == "/" {
				viaDDI = append(viaDDI, cl.end.Sub(cl.start))
			} else {
				direct = append(direct, cl.end.Sub(cl.start))
			}
		}
		rep.Latency = map[string]string{"via ddi (GET /)": viaDDI.String(), "direct (GET /direct)": direct.String(),
			"p50 added": ms(viaDDI.percentile(50) - direct.percentile(50)), "p99 added": ms(viaDDI.percentile(99) - direct.percentile(99))}
		t.Logf("frontend -> greeter through the sidecar: %s", viaDDI)
		t.Logf("frontend -> greeter directly:            %s", direct)

		rep.Memory = map[string]string{}
		fresh, err := c.cs.CoreV1().Pods("ddi-demo").Get(t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"ddi-sidecar", "user-container", "queue-proxy"} {
			m, err := c.containerMemory(fresh, name)
			if err != nil {
				t.Fatalf("memory of %s: %v", name, err)
			}
			rep.Memory["frontend pod, "+name+" (after the latency run)"] = m.String()
			t.Logf("frontend pod, %s: %s", name, m)
		}
		idle := c.readyPod(t, "openfaas-fn", "faas_function=greet", time.Minute)
		if m, err := c.containerMemory(&idle, "ddi-sidecar"); err == nil {
			rep.Memory["OpenFaaS-shaped pod, ddi-sidecar (little traffic)"] = m.String()
			t.Logf("OpenFaaS-shaped pod, ddi-sidecar: %s", m)
		}
	})

	t.Run("greeter v2 rebinds frontend live with no Provider edit", func(t *testing.T) {
		pod := c.frontendPod(t)
		generation := c.kubectlRun(t, "-n", "ddi-demo", "get", "provider", "greeter", "-o", "jsonpath={.metadata.generation}")
		before := c.greeterBinding(t, pod.Name)
		if before.Version != "1.0.0" {
			t.Fatalf("frontend's greeter binding = %+v, want version 1.0.0", before)
		}
		tr := steadyTraffic(route, frontendHost, 2, 50*time.Millisecond)
		time.Sleep(3 * time.Second)
		applied := time.Now()
		c.apply(t, im, "examples/knative/greeter-v2.yaml")
		var after sidecarBinding
		eventually(t, 3*time.Minute, "frontend's binding at greeter 2.0.0 and answers from greeter 2.0.0", func() (bool, error) {
			after = c.greeterBinding(t, pod.Name)
			calls := tr.snapshot()
			return after.Version == "2.0.0" && len(calls) > 0 && calls[len(calls)-1].answer.Version == "2.0.0", nil
		})
		rebound := time.Now()
		time.Sleep(5 * time.Second)
		calls := tr.halt()

		if fs := failures(calls); len(fs) > 0 {
			t.Errorf("%d of %d requests through frontend failed during the switch:\n%s", len(fs), len(calls), describeFailures(fs))
		}
		if after.Revision <= before.Revision {
			t.Errorf("binding revision %d -> %d, want it to grow", before.Revision, after.Revision)
		}
		v2rev := c.kubectlRun(t, "-n", "ddi-demo", "get", "ksvc", "greeter", "-o", "jsonpath={.status.latestReadyRevisionName}")
		v1, v2, firstV2 := 0, 0, time.Time{}
		for _, cl := range calls {
			switch cl.answer.Version {
			case "1.0.0":
				v1++
			case "2.0.0":
				v2++
				if firstV2.IsZero() {
					firstV2 = cl.end
				}
			}
		}
		for _, cl := range calls[max(0, len(calls)-20):] {
			if cl.answer.Version != "2.0.0" || cl.answer.Revision != v2rev {
				t.Errorf("a request after the switch got %+v, want greeter 2.0.0 from the new revision %s", cl.answer, v2rev)
				break
			}
		}
		if got := c.kubectlRun(t, "-n", "ddi-demo", "get", "provider", "greeter", "-o", "jsonpath={.metadata.generation} {.status.version} {.status.revision}"); got != generation+" 2.0.0 "+v2rev {
			t.Errorf("Provider greeter's generation, status version and revision = %q, want %q: unedited, following revision %s", got, generation+" 2.0.0 "+v2rev, v2rev)
		}
		files := bindingFiles(t, client, route, frontendHost)
		if files["greeter/knative-revision"] != v2rev || files["greeter/knative-traffic"] != "100% "+v2rev+" 2.0.0" {
			t.Errorf("binding files greeter/knative-revision = %q, greeter/knative-traffic = %q; want %s and %q",
				files["greeter/knative-revision"], files["greeter/knative-traffic"], v2rev, "100% "+v2rev+" 2.0.0")
		}
		now := c.frontendPod(t)
		if now.UID != pod.UID || restarts(&now) != 0 {
			t.Errorf("frontend pod %s (uid %s, %d restarts) after the switch, want %s unchanged and never restarted", now.Name, now.UID, restarts(&now), pod.Name)
		}
		rep.Rebind = map[string]string{
			"requests":                  strconv.Itoa(len(calls)),
			"failed":                    strconv.Itoa(len(failures(calls))),
			"answered by greeter 1.0.0": strconv.Itoa(v1),
			"answered by greeter 2.0.0": strconv.Itoa(v2),
			"first v2 answer after":     firstV2.Sub(applied).Round(10 * time.Millisecond).String(),
			"binding at 2.0.0 after":    rebound.Sub(applied).Round(10 * time.Millisecond).String(),
			"binding revision":          fmt.Sprintf("%d -> %d", before.Revision, after.Revision),
			"frontend pod restarted?":   strconv.FormatBool(now.UID != pod.UID || restarts(&now) != 0),
		}
		t.Logf("rebind: %v", rep.Rebind)
	})

	// Host components of the cluster restarted in place, one at a time,
	// each under steady traffic: the API server, then etcd; the
	// controller's leader pod is deleted next (the scenario after these),
	// and containerd restarted after that.
	chaos := c.newClusterChaos(t, route, frontendHost, client)
	rep.ClusterRestarts = map[string]map[string]string{}
	for _, component := range []string{"kube-apiserver", "etcd"} {
		t.Run(component+" restarted during steady traffic", func(t *testing.T) {
			rep.ClusterRestarts[component] = chaos.restart(t, component)
		})
	}

	t.Run("leader, then the other controller replica deleted during steady traffic", func(t *testing.T) {
		pod := c.frontendPod(t)
		replicas := c.controllerReplicas(t)
		if replicas < 2 {
			t.Fatalf("the controller Deployment runs %d replica(s); deploy/ ships 2, and this scenario needs two", replicas)
		}
		ready := c.readyControllers(t, replicas, 3*time.Minute)
		var leader string
		eventually(t, time.Minute, "a ready controller pod to hold the Lease", func() (bool, error) {
			h, err := c.leaseHolder(t)
			leader = h
			return slices.ContainsFunc(ready, func(p corev1.Pod) bool { return p.Name == h }), err
		})
		reconnects := c.sidecarMetric(t, pod.Name, "ddi_sidecar_stream_reconnects_total")
		tr := steadyTraffic(route, frontendHost, 2, 50*time.Millisecond)
		time.Sleep(3 * time.Second)

		// The leader goes: another replica takes the Lease.
		leaderDeleted := time.Now()
		if err := c.cs.CoreV1().Pods("ddi-system").Delete(t.Context(), leader, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		var next string
		eventually(t, 2*time.Minute, "another controller pod to take the Lease from "+leader, func() (bool, error) {
			h, err := c.leaseHolder(t)
			next = h
			return err == nil && h != "" && h != leader, err
		})
		tookOver := time.Now()
		ready = c.readyControllers(t, replicas, 3*time.Minute)
		leaderReplaced := time.Now()

		// Then one that does not lead: the leader keeps the Lease.
		var other string
		for _, p := range ready {
			if p.Name != next {
				other = p.Name
				break
			}
		}
		otherDeleted := time.Now()
		if err := c.cs.CoreV1().Pods("ddi-system").Delete(t.Context(), other, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		c.readyControllers(t, replicas, 3*time.Minute)
		otherReplaced := time.Now()
		if h, err := c.leaseHolder(t); err != nil || h != next {
			t.Errorf("Lease holder = %q, %v after %s (not the leader) was deleted, want %s unchanged", h, err, other, next)
		}

		// Changes still reach frontend's sidecar: a Provider change, and a
		// DependencySet (its status written by the new leader).
		motd := "ha-" + strconv.FormatInt(time.Now().Unix(), 10)
		changed := time.Now()
		c.kubectlRun(t, "-n", "ddi-demo", "patch", "provider", "greeter", "--type=merge", "-p", `{"spec":{"config":{"motd":"`+motd+`"}}}`)
		eventually(t, time.Minute, "the Provider change to reach frontend's binding files", func() (bool, error) {
			return bindingFiles(t, client, route, frontendHost)["greeter/motd"] == motd, nil
		})
		providerSeen := time.Now()
		t.Cleanup(func() {
			if _, err := c.tryKubectl("", "-n", "ddi-demo", "delete", "dependencyset", "frontend-ha", "--ignore-not-found"); err != nil {
				t.Logf("delete DependencySet frontend-ha: %v", err)
			}
		})
		c.kubectlIn(t, `apiVersion: ddi.dev/v1alpha1
kind: DependencySet
metadata:
  name: frontend-ha
  namespace: ddi-demo
spec:
  selector:
    matchLabels:
      serving.knative.dev/service: frontend
  dependencies:
    - alias: greeter-ha
      provider:
        name: greeter
        namespace: ddi-demo
`, "apply", "-f", "-")
		dsApplied := time.Now()
		eventually(t, time.Minute, "DependencySet frontend-ha's alias greeter-ha in frontend's binding files", func() (bool, error) {
			return bindingFiles(t, client, route, frontendHost)["greeter-ha/provider"] == "greeter", nil
		})
		dsSeen := time.Now()
		c.kubectlRun(t, "-n", "ddi-demo", "wait", "--for=condition=Ready", "--timeout=60s", "dependencyset/frontend-ha")
		time.Sleep(3 * time.Second)
		calls := tr.halt()
		if fs := failures(calls); len(fs) > 0 {
			t.Errorf("%d of %d requests through frontend failed while the controller replicas were deleted one at a time:\n%s", len(fs), len(calls), describeFailures(fs))
		}
		sidecarReconnects := "n/a: frontend's pod was replaced"
		if now := c.frontendPod(t); now.UID == pod.UID {
			sidecarReconnects = strconv.FormatFloat(c.sidecarMetric(t, pod.Name, "ddi_sidecar_stream_reconnects_total")-reconnects, 'f', 0, 64)
		}
		rep.ControllerReplicas = map[string]string{
			"replicas":                               strconv.Itoa(replicas),
			"requests":                               strconv.Itoa(len(calls)),
			"failed":                                 strconv.Itoa(len(failures(calls))),
			"Lease taken over after":                 tookOver.Sub(leaderDeleted).Round(10*time.Millisecond).String() + " (leader " + leader + " -> " + next + ")",
			"replicas ready after leader deleted":    leaderReplaced.Sub(leaderDeleted).Round(10 * time.Millisecond).String(),
			"replicas ready after other deleted":     otherReplaced.Sub(otherDeleted).Round(10 * time.Millisecond).String(),
			"Provider change seen by frontend after": providerSeen.Sub(changed).Round(10 * time.Millisecond).String(),
			"DependencySet seen by frontend after":   dsSeen.Sub(dsApplied).Round(10 * time.Millisecond).String(),
			"frontend sidecar stream reconnects":     sidecarReconnects,
		}
		t.Logf("controller replicas deleted one at a time: %v", rep.ControllerReplicas)
	})

	t.Run("controller pod deleted during steady traffic", func(t *testing.T) {
		pod := c.frontendPod(t)
		reconnects := c.sidecarMetric(t, pod.Name, "ddi_sidecar_stream_reconnects_total")
		const sel = "app.kubernetes.io/name=ddi,app.kubernetes.io/component=controller"
		old := c.pods(t, "ddi-system", sel)
		if len(old) == 0 {
			t.Fatal("no controller pod")
		}
		tr := steadyTraffic(route, frontendHost, 2, 50*time.Millisecond)
		time.Sleep(3 * time.Second)
		deleted := time.Now()
		for _, p := range old {
			if err := c.cs.CoreV1().Pods("ddi-system").Delete(t.Context(), p.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var back corev1.Pod
		eventually(t, 3*time.Minute, "a new ready controller pod", func() (bool, error) {
			for _, p := range c.pods(t, "ddi-system", sel) {
				if podReady(&p) && !slices.ContainsFunc(old, func(o corev1.Pod) bool { return o.UID == p.UID }) {
					back = p
					return true, nil
				}
			}
			return false, nil
		})
		ready := time.Now()
		eventually(t, 2*time.Minute, "frontend's sidecar to reconnect", func() (bool, error) {
			return c.sidecarMetric(t, pod.Name, "ddi_sidecar_stream_reconnects_total") > reconnects &&
				c.sidecarMetric(t, pod.Name, "ddi_sidecar_control_plane_connected") == 1, nil
		})
		reconnected := time.Now()
		// Resynchronised: a change made now reaches frontend's files.
		c.kubectlRun(t, "-n", "ddi-demo", "patch", "provider", "greeter", "--type=merge", "-p", `{"spec":{"config":{"motd":"resynced"}}}`)
		eventually(t, time.Minute, "the Provider change to reach frontend's binding files", func() (bool, error) {
			return bindingFiles(t, client, route, frontendHost)["greeter/motd"] == "resynced", nil
		})
		resynced := time.Now()
		time.Sleep(3 * time.Second)
		calls := tr.halt()
		if fs := failures(calls); len(fs) > 0 {
			t.Errorf("%d of %d requests through frontend failed while the controller was away:\n%s", len(fs), len(calls), describeFailures(fs))
		}
		rep.ControllerOutage = map[string]string{
			"requests":                      strconv.Itoa(len(calls)),
			"failed":                        strconv.Itoa(len(failures(calls))),
			"new controller ready after":    ready.Sub(deleted).Round(10 * time.Millisecond).String(),
			"sidecar reconnected after":     reconnected.Sub(deleted).Round(10 * time.Millisecond).String(),
			"change seen by frontend after": resynced.Sub(reconnected).Round(10*time.Millisecond).String() + " (Provider patched after the reconnect)",
		}
		t.Logf("controller %s replaced by %s: %v", old[0].Name, back.Name, rep.ControllerOutage)
	})

	t.Run("containerd restarted during steady traffic", func(t *testing.T) {
		rep.ClusterRestarts["containerd"] = chaos.restart(t, "containerd")
		t.Logf("the controller's leader pod deleted during steady traffic: see the scenario %q (report: controllerReplicas)",
			"leader, then the other controller replica deleted during steady traffic")
	})

	t.Run("frontend pod deleted with requests in flight", func(t *testing.T) {
		// Each request waits 3 s in frontend before it calls greeter
		// through the sidecar; the pod is deleted 1 s in. The kubelet
		// stops the plain-container sidecar together with the function, so
		// the sidecar must outlive the function for these calls to work.
		pod := c.frontendPod(t)
		const inflight = 6
		calls := make(chan call, inflight)
		for range inflight {
			go func() { calls <- request(client, route+"?delay=3s", frontendHost) }()
		}
		time.Sleep(time.Second)
		deleted := time.Now()
		c.kubectlRun(t, "-n", "ddi-demo", "delete", "pod", pod.Name, "--wait=false")
		failed := 0
		for range inflight {
			cl := <-calls
			if !cl.ok() {
				failed++
				t.Errorf("a request in flight when its pod was deleted failed: %v", cl.err)
			}
		}
		rep.Termination = fmt.Sprintf("%d requests in flight when the pod was deleted, %d failed; answered within %s of the deletion",
			inflight, failed, time.Since(deleted).Round(time.Millisecond))
		t.Log(rep.Termination)
	})

	t.Run("a Job gets the native sidecar, finds its binding at start and completes", func(t *testing.T) {
		c.apply(t, im, "test/e2e/testdata/job.yaml")
		const sel = "batch.kubernetes.io/job-name=resolve-once"
		eventually(t, 2*time.Minute, "Job resolve-once to complete", func() (bool, error) {
			j, err := c.cs.BatchV1().Jobs("ddi-demo").Get(t.Context(), "resolve-once", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if j.Status.Failed > 0 {
				for _, p := range c.pods(t, "ddi-demo", sel) {
					t.Logf("pod %s: %s", p.Name, c.containerLogs(t, "ddi-demo", p.Name, "job"))
				}
				t.Fatalf("Job resolve-once failed: its one call to greeter through the sidecar failed")
			}
			return j.Status.Succeeded == 1, nil
		})
		pods := c.pods(t, "ddi-demo", sel)
		if len(pods) != 1 {
			t.Fatalf("Job resolve-once has %d pods, want 1", len(pods))
		}
		pod := pods[0]
		if pod.Status.Phase != corev1.PodSucceeded {
			t.Errorf("pod %s phase %s, want Succeeded (the kubelet stops a native sidecar after the job)", pod.Name, pod.Status.Phase)
		}
		if len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != "ddi-sidecar" {
			t.Fatalf("pod %s has no ddi-sidecar init container (init containers: %v)", pod.Name, names(&pod))
		}
		sc := pod.Spec.InitContainers[0]
		if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("ddi-sidecar of %s is not a native sidecar (restartPolicy %v)", pod.Name, sc.RestartPolicy)
		}
		if sc.Lifecycle == nil || sc.Lifecycle.PostStart == nil || sc.Lifecycle.PostStart.Exec == nil || sc.StartupProbe != nil {
			t.Errorf("ddi-sidecar of %s: want a postStart hook and no startup probe (lifecycle %+v, startupProbe %+v)", pod.Name, sc.Lifecycle, sc.StartupProbe)
		}
		out := c.containerLogs(t, "ddi-demo", pod.Name, "job")
		if !strings.Contains(out, "200 OK") || !strings.Contains(out, "hello from greeter") {
			t.Errorf("the job's call to greeter through the sidecar did not answer:\n%s", out)
		}
		t.Logf("Job resolve-once completed; native sidecar stopped after it")
	})

	t.Run("scale to zero and back, cold start with and without ddi", func(t *testing.T) {
		waitZero := func(services ...string) {
			t.Helper()
			eventually(t, 4*time.Minute, "no pods for "+strings.Join(services, ", "), func() (bool, error) {
				for _, s := range services {
					if len(c.pods(t, "ddi-demo", "serving.knative.dev/service="+s)) > 0 {
						return false, nil
					}
				}
				return true, nil
			})
		}
		waitZero("frontend", "cold-ddi", "cold-ddi-native", "cold-ddi-container", "cold-plain", "cold-floor")
		got := request(client, route, frontendHost)
		if !got.ok() {
			t.Fatalf("first request to frontend after scale to zero: %v", got.err)
		}
		rep.FrontendWake = got.end.Sub(got.start).Round(time.Millisecond).String()
		t.Logf("frontend woke from zero in %s: %+v", rep.FrontendWake, got.answer)
		pod := c.readyPod(t, "ddi-demo", "serving.knative.dev/service=frontend", time.Minute)
		c.checkStartOrder(t, &pod)

		rounds := envInt(t, "DDI_E2E_COLD_ROUNDS", 10)
		services := []string{"cold-plain", "cold-floor", "cold-ddi", "cold-ddi-native", "cold-ddi-container"}
		// The modes that promise the bindings before the function starts.
		ordered := map[string]bool{"cold-ddi": true, "cold-ddi-native": true}
		cold := map[string]latencies{}
		// From the sandbox ready to the function's container started, from
		// containerd's log: the part of a cold start the sidecar's mode
		// changes, without the scheduling, volume and activator steps
		// that every mode shares.
		fnStart := map[string]latencies{}
		rep.ColdTimeline = map[string]string{}
		for r := range rounds {
			if r > 0 {
				waitZero(services...)
			}
			for i := range services { // a different one goes first each round
				svc := services[(i+r)%len(services)]
				cl := request(client, route, svc+".ddi-demo.example.com")
				if !cl.ok() {
					t.Fatalf("first request to %s after scale to zero: %v", svc, cl.err)
				}
				cold[svc] = append(cold[svc], cl.end.Sub(cl.start))
				t.Logf("round %d: %s cold start %s", r+1, svc, ms(cl.end.Sub(cl.start)))
				pod := c.readyPod(t, "ddi-demo", "serving.knative.dev/service="+svc, time.Minute)
				if ordered[svc] {
					c.checkBindingsAtStart(t, &pod, "greeter")
				}
				steps := c.containerdSteps(t, pod.Name)
				if d, ok := steps.sinceSandbox("user-container"); ok {
					fnStart[svc] = append(fnStart[svc], d)
				} else {
					t.Errorf("containerd's log has no start of %s's user-container: %s", pod.Name, steps)
				}
				if r == 0 {
					rep.ColdTimeline[svc] = c.timeline(t, &pod, cl) + "; containerd: " + steps.String()
					t.Logf("%s: %s", svc, rep.ColdTimeline[svc])
				}
			}
		}
		rep.ColdStart = map[string]string{
			"without ddi (cold-plain)":                           cold["cold-plain"].String(),
			"without ddi, one idle container first (cold-floor)": cold["cold-floor"].String(),
			"with ddi, ordered sidecar (cold-ddi)":               cold["cold-ddi"].String(),
			"with ddi, native sidecar (cold-ddi-native)":         cold["cold-ddi-native"].String(),
			"with ddi, plain container (cold-ddi-container)":     cold["cold-ddi-container"].String(),
		}
		rep.ColdFunctionStart = map[string]string{}
		for _, svc := range services {
			rep.ColdFunctionStart[svc] = fnStart[svc].String()
		}
		for k, v := range rep.ColdStart {
			t.Logf("cold start %s: %s", k, v)
		}
		for _, svc := range services {
			t.Logf("sandbox ready to function started, %s: %s (p50 %s more than cold-plain)", svc, rep.ColdFunctionStart[svc],
				ms(fnStart[svc].percentile(50)-fnStart["cold-plain"].percentile(50)))
		}
		plain, orderedP50 := cold["cold-plain"].percentile(50), cold["cold-ddi"].percentile(50)
		floor, nativeP50 := cold["cold-floor"].percentile(50), cold["cold-ddi-native"].percentile(50)
		t.Logf("cold start p50: ordered sidecar %s, native sidecar %s, no ddi %s (differences %s, %s); one idle container first, no ddi: %s (%s)",
			ms(orderedP50), ms(nativeP50), ms(plain), ms(orderedP50-plain), ms(nativeP50-plain), ms(floor), ms(floor-plain))
	})

	rep.Total = time.Since(began).Round(time.Second).String()
	t.Logf("whole test: %s", rep.Total)
}

// frontendPod wakes frontend with a request through its route (it scales
// to zero seconds after its last request) and returns its ready pod.
func (c *localCluster) frontendPod(t *testing.T) corev1.Pod {
	t.Helper()
	eventually(t, time.Minute, "frontend to answer through its route", func() (bool, error) {
		cl := request(&http.Client{Timeout: 30 * time.Second}, c.ingress+"/bindings", "frontend.ddi-demo.example.com")
		return cl.err == nil && cl.status == http.StatusOK, cl.err
	})
	return c.readyPod(t, "ddi-demo", "serving.knative.dev/service=frontend", 2*time.Minute)
}

// checkInjected checks a pod that the webhook injected: the ordered
// sidecar (the first container, with a postStart hook that waits for its
// readiness; deploy/'s default for pods that run until deleted), the
// bindings volume and environment in the wired containers, and nothing in
// the containers that belong to the platform.
func checkInjected(t *testing.T, pod *corev1.Pod, wired, untouched []string) {
	t.Helper()
	if pod.Annotations["ddi.dev/injected-version"] == "" {
		t.Errorf("pod %s has no ddi.dev/injected-version annotation: the webhook did not inject it", pod.Name)
	}
	if len(pod.Spec.Containers) == 0 || pod.Spec.Containers[0].Name != "ddi-sidecar" {
		t.Fatalf("pod %s does not start with the ddi-sidecar container (containers: %v)", pod.Name, names(pod))
	}
	sc := pod.Spec.Containers[0]
	if sc.Lifecycle == nil || sc.Lifecycle.PostStart == nil || sc.Lifecycle.PostStart.Exec == nil {
		t.Errorf("ddi-sidecar of %s has no postStart hook (lifecycle %+v)", pod.Name, sc.Lifecycle)
	}
	if !slices.ContainsFunc(sc.Env, func(e corev1.EnvVar) bool { return e.Name == "DDI_OUTLIVE_APP" && e.Value == "true" }) {
		t.Errorf("ddi-sidecar of %s does not outlive the function (no DDI_OUTLIVE_APP=true)", pod.Name)
	}
	if len(sc.Ports) != 0 {
		t.Errorf("ddi-sidecar of %s declares ports %v; Knative allows only the function's", pod.Name, sc.Ports)
	}
	for _, name := range wired {
		if !hasMount(pod, name, "/bindings") || !hasEnv(pod, name, "DDI_ADDR") || !hasEnv(pod, name, "SERVICE_BINDING_ROOT") {
			t.Errorf("container %s of %s lacks the bindings mount or DDI_ADDR/SERVICE_BINDING_ROOT", name, pod.Name)
		}
	}
	for _, name := range untouched {
		if hasMount(pod, name, "/bindings") || hasEnv(pod, name, "DDI_ADDR") {
			t.Errorf("container %s of %s was wired to ddi; it belongs to the platform", name, pod.Name)
		}
	}
}

func names(pod *corev1.Pod) []string {
	var out []string
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		out = append(out, c.Name)
	}
	return out
}

func container(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

func hasMount(pod *corev1.Pod, name, path string) bool {
	c := container(pod, name)
	return c != nil && slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == path })
}

func hasEnv(pod *corev1.Pod, name, env string) bool {
	c := container(pod, name)
	return c != nil && slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == env })
}

func restarts(pod *corev1.Pod) int32 {
	var n int32
	for _, s := range append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...) {
		n += s.RestartCount
	}
	return n
}

// sidecarBinding is the part of a sidecar binding the test reads.
type sidecarBinding struct {
	Provider string            `json:"provider"`
	Version  string            `json:"version"`
	Revision int64             `json:"revision"`
	Config   map[string]string `json:"config"`
}

// greeterBinding reads frontend's greeter binding from its sidecar.
func (c *localCluster) greeterBinding(t *testing.T, pod string) sidecarBinding {
	t.Helper()
	var b sidecarBinding
	eventually(t, time.Minute, "frontend's sidecar API", func() (bool, error) {
		code, body, err := c.sidecarGet(t, "ddi-demo", pod, "/v1/bindings/greeter")
		if err != nil || code != http.StatusOK {
			return false, fmt.Errorf("GET /v1/bindings/greeter = %d %s: %v", code, body, err)
		}
		return true, json.Unmarshal(body, &b)
	})
	return b
}

// sidecarMetric reads an unlabelled metric of frontend's sidecar.
func (c *localCluster) sidecarMetric(t *testing.T, pod, name string) float64 {
	t.Helper()
	var v float64
	eventually(t, time.Minute, "frontend's sidecar metrics", func() (bool, error) {
		code, body, err := c.sidecarGet(t, "ddi-demo", pod, "/metrics")
		if err != nil || code != http.StatusOK {
			return false, fmt.Errorf("GET /metrics = %d: %v", code, err)
		}
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
		if m == nil {
			return false, fmt.Errorf("no metric %s", name)
		}
		v, err = strconv.ParseFloat(string(m[1]), 64)
		return err == nil, err
	})
	return v
}

// invokeCount is how many greeter invocations frontend's sidecar proxied.
func (c *localCluster) invokeCount(t *testing.T, pod string) int {
	t.Helper()
	code, body, err := c.sidecarGet(t, "ddi-demo", pod, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics of frontend's sidecar = %d: %v", code, err)
	}
	m := regexp.MustCompile(`(?m)^ddi_sidecar_invoke_total\{dependency="greeter",result="ok"\} (\d+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// bindingFiles returns frontend's Service Binding files (GET /bindings).
func bindingFiles(t *testing.T, client *http.Client, route, host string) map[string]string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, route+"bindings", nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /bindings through frontend's route: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Files map[string]string `json:"files"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET /bindings: %v", err)
	}
	return out.Files
}

// containerMemory reads the memory of a running container of pod.
func (c *localCluster) containerMemory(pod *corev1.Pod, name string) (containerMemory, error) {
	for _, s := range append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...) {
		if s.Name == name && s.ContainerID != "" {
			return readContainerMemory(string(pod.UID), s.ContainerID)
		}
	}
	return containerMemory{}, fmt.Errorf("pod %s has no running container %s", pod.Name, name)
}

// checkStartOrder checks, on a pod that just started, that the sidecar had
// its first snapshot (so its postStart hook could return) before the
// function started serving.
func (c *localCluster) checkStartOrder(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	sidecarReady := firstLogTime(t, c.containerLogs(t, pod.Namespace, pod.Name, "ddi-sidecar"), "snapshot applied")
	serving := firstLogTime(t, c.containerLogs(t, pod.Namespace, pod.Name, "user-container"), "listening")
	if !sidecarReady.Before(serving) {
		t.Errorf("frontend started listening at %s, before its sidecar's first snapshot at %s", serving.Format(time.RFC3339Nano), sidecarReady.Format(time.RFC3339Nano))
	}
	for _, s := range append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...) {
		if s.Name == "ddi-sidecar" && (s.Started == nil || !*s.Started) {
			t.Errorf("ddi-sidecar of %s is not started: %+v", pod.Name, s)
		}
	}
	t.Logf("sidecar ready at %s, frontend listening at %s (+%s)", sidecarReady.Format("15:04:05.000"), serving.Format("15:04:05.000"), serving.Sub(sidecarReady).Round(time.Millisecond))
}

// checkBindingsAtStart checks that the function's process found the
// binding of alias in place when it started: examples/greeter lists the
// binding root as its very first act, and the sidecar's first snapshot
// (which it applies after writing the files) precedes that line.
func (c *localCluster) checkBindingsAtStart(t *testing.T, pod *corev1.Pod, alias string) {
	t.Helper()
	logs := c.containerLogs(t, pod.Namespace, pod.Name, "user-container")
	started := firstLogTime(t, logs, "bindings at start:")
	line := ""
	for l := range strings.Lines(logs) {
		if strings.Contains(l, "bindings at start:") {
			line = strings.TrimSpace(l)
			break
		}
	}
	if !slices.Contains(strings.Fields(strings.Trim(line[strings.Index(line, "[")+1:], "]")), alias) {
		t.Errorf("pod %s: the function started without its %s binding: %q", pod.Name, alias, line)
	}
	applied := firstLogTime(t, c.containerLogs(t, pod.Namespace, pod.Name, "ddi-sidecar"), "snapshot applied")
	if !applied.Before(started) {
		t.Errorf("pod %s: the function started at %s, before its sidecar's first snapshot at %s", pod.Name,
			started.Format(time.RFC3339Nano), applied.Format(time.RFC3339Nano))
	}
}

// timeline is one cold start, in seconds after the request was sent:
// when the sidecar logged that it listens and that its first snapshot was
// applied (when the pod has one), when the function's process logged its
// first line, and when the answer came back. Log times are the kubelet's
// (nanoseconds), on the same clock as the test.
func (c *localCluster) timeline(t *testing.T, pod *corev1.Pod, cl call) string {
	t.Helper()
	at := func(when time.Time) string { return fmt.Sprintf("%.3f s", when.Sub(cl.start).Seconds()) }
	var parts []string
	if container(pod, "ddi-sidecar") != nil || slices.ContainsFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == "ddi-sidecar" }) {
		logs := c.containerLogs(t, pod.Namespace, pod.Name, "ddi-sidecar")
		parts = append(parts, "sidecar listening "+at(firstLogTime(t, logs, "sidecar listening")),
			"first snapshot "+at(firstLogTime(t, logs, "snapshot applied")))
	}
	fn := c.containerLogs(t, pod.Namespace, pod.Name, "user-container")
	for l := range strings.Lines(fn) {
		ts, _, _ := strings.Cut(l, " ")
		if when, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			parts = append(parts, "function's first log line "+at(when))
			break
		}
	}
	return strings.Join(append(parts, "answered "+at(cl.end)), ", ")
}

// firstLogTime returns the kubelet timestamp of the first log line that
// contains s.
func firstLogTime(t *testing.T, logs, s string) time.Time {
	t.Helper()
	for line := range strings.Lines(logs) {
		ts, rest, _ := strings.Cut(line, " ")
		if strings.Contains(rest, s) {
			when, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				t.Fatalf("log timestamp %q: %v", ts, err)
			}
			return when
		}
	}
	t.Fatalf("no log line contains %q:\n%s", s, logs)
	return time.Time{}
}

// report holds the measurements of one run.
type report struct {
	Started            string            `json:"started"`
	Total              string            `json:"total"`
	Steps              []string          `json:"steps"`
	Latency            map[string]string `json:"latency,omitempty"`
	Memory             map[string]string `json:"memory,omitempty"`
	Rebind             map[string]string `json:"rebind,omitempty"`
	ControllerOutage   map[string]string `json:"controllerOutage,omitempty"`
	ControllerReplicas map[string]string `json:"controllerReplicas,omitempty"`
	FrontendWake       string            `json:"frontendWake,omitempty"`
	ColdStart          map[string]string `json:"coldStart,omitempty"`
	ColdTimeline       map[string]string `json:"coldTimeline,omitempty"`
	// ColdFunctionStart is, per service, the time from the pod's sandbox
	// ready to its function's container started (containerd's log).
	ColdFunctionStart map[string]string `json:"coldFunctionStart,omitempty"`
	Termination       string            `json:"termination,omitempty"`
	RegistrationGone  string            `json:"registrationGone,omitempty"`
	FissionReidentify string            `json:"fissionReidentify,omitempty"`

	// ClusterRestarts are the figures of each host component restarted
	// in place, by component (the leader pod's deletion is in
	// ControllerReplicas).
	ClusterRestarts map[string]map[string]string `json:"clusterRestarts,omitempty"`
}

func step(what string, since time.Time) string {
	return what + ": " + time.Since(since).Round(100*time.Millisecond).String()
}

// write saves the report to $DDI_E2E_REPORT, if set.
func (r *report) write(t *testing.T) {
	path := os.Getenv("DDI_E2E_REPORT")
	if path == "" {
		return
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Errorf("write report: %v", err)
	}
}
