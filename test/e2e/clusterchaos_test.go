//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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
)

// chaosObjects are a Provider and a DependencySet that exist only so that
// a cluster fault has more of ddi's objects to lose: greeter-chaos (the
// same Knative Service as greeter) and frontend-chaos, which binds it to
// frontend under the alias greeter-chaos.
const chaosObjects = `apiVersion: ddi.dev/v1alpha1
kind: Provider
metadata:
  name: greeter-chaos
  namespace: ddi-demo
spec:
  type: http
  version: 1.0.0
  serviceRef:
    apiVersion: serving.knative.dev/v1
    kind: Service
    name: greeter
---
apiVersion: ddi.dev/v1alpha1
kind: DependencySet
metadata:
  name: frontend-chaos
  namespace: ddi-demo
spec:
  selector:
    matchLabels:
      serving.knative.dev/service: frontend
  dependencies:
    - alias: greeter-chaos
      provider:
        name: greeter-chaos
        namespace: ddi-demo
`

// clusterChaos restarts host components of the local cluster in place
// (hack/cluster.sh restart) while frontend serves steady traffic, and
// measures what ddi's data and control planes make of it.
type clusterChaos struct {
	c      *localCluster
	route  string // the KIngress, ending in /
	host   string // frontend's Host
	client *http.Client
}

// newClusterChaos applies chaosObjects, waits until frontend's binding
// files hold greeter-chaos, and deletes both objects when t ends.
func (c *localCluster) newClusterChaos(t *testing.T, route, host string, client *http.Client) *clusterChaos {
	t.Helper()
	c.kubectlIn(t, chaosObjects, "apply", "-f", "-")
	t.Cleanup(func() {
		if _, err := c.tryKubectl("", "-n", "ddi-demo", "delete", "dependencyset/frontend-chaos", "provider/greeter-chaos", "--ignore-not-found"); err != nil {
			t.Logf("delete the chaos Provider and DependencySet: %v", err)
		}
	})
	c.kubectlRun(t, "-n", "ddi-demo", "wait", "--for=condition=Ready", "--timeout=90s", "provider/greeter-chaos", "dependencyset/frontend-chaos")
	c.frontendPod(t)
	eventually(t, time.Minute, "frontend's binding files to hold greeter-chaos (DependencySet frontend-chaos)", func() (bool, error) {
		return bindingFiles(t, client, route, host)["greeter-chaos/provider"] == "greeter-chaos", nil
	})
	return &clusterChaos{c: c, route: route, host: host, client: client}
}

// restart restarts component (a name hack/cluster.sh restart knows) under
// steady traffic through frontend and returns the figures: requests and
// failures, ddi objects lost, how long ddi's controller and frontend's
// sidecar stream took to come back, container restarts it caused, and
// how long a Provider change made afterwards took to reach frontend's
// binding files. It fails t on a failed request, a lost object or a change
// that does not arrive.
func (cc *clusterChaos) restart(t *testing.T, component string) map[string]string {
	c := cc.c
	pod := c.frontendPod(t)
	replicas := c.controllerReplicas(t)
	c.readyControllers(t, replicas, 3*time.Minute)
	objectsBefore := c.ddiObjects(t)
	restartsBefore := c.containerRestarts(t)
	reconnects := c.sidecarMetric(t, pod.Name, "ddi_sidecar_stream_reconnects_total")
	holderBefore, err := c.leaseHolder(t)
	if err != nil {
		t.Fatalf("controller Lease: %v", err)
	}

	tr := steadyTraffic(cc.route, cc.host, 2, 50*time.Millisecond)
	time.Sleep(3 * time.Second)
	began := time.Now()
	restartMS := c.restartComponent(t, component)
	healthy := time.Now()

	// Resynchronised: a change made as soon as the component is healthy
	// again reaches frontend's files, whatever the controller is doing.
	motd := component + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	changed := time.Now()
	c.kubectlRun(t, "-n", "ddi-demo", "patch", "provider", "greeter", "--type=merge", "-p", `{"spec":{"config":{"motd":"`+motd+`"}}}`)
	var files map[string]string
	eventually(t, 2*time.Minute, "the Provider change to reach frontend's binding files", func() (bool, error) {
		files = bindingFiles(t, cc.client, cc.route, cc.host)
		return files["greeter/motd"] == motd, nil
	})
	resynced := time.Now()
	if files["greeter-chaos/provider"] != "greeter-chaos" {
		t.Errorf("frontend's binding files lost DependencySet frontend-chaos's alias greeter-chaos after %s restarted: %v", component, files)
	}

	back := c.controllerBack(t, replicas, began, healthy)
	frontendFigure, streamFigure := "unchanged", "n/a: frontend's pod was replaced"
	if now := c.frontendPod(t); now.UID != pod.UID {
		frontendFigure = "replaced by " + now.Name
		t.Logf("frontend's pod %s was replaced by %s during the restart of %s", pod.Name, now.Name, component)
	} else {
		streamFigure = c.sidecarStream(t, pod.Name, reconnects, began)
	}

	time.Sleep(3 * time.Second)
	calls := tr.halt()

	if fs := failures(calls); len(fs) > 0 {
		t.Errorf("%d of %d requests through frontend failed while %s restarted:\n%s", len(fs), len(calls), component, describeFailures(fs))
	}
	during := 0
	for _, cl := range calls {
		if !cl.start.Before(began) && cl.start.Before(healthy) {
			during++
		}
	}
	objectsAfter := c.ddiObjects(t)
	lost := lostObjects(objectsBefore, objectsAfter)
	if len(lost) > 0 {
		t.Errorf("ddi objects lost while %s restarted: %v (before: %v, after: %v)", component, lost, objectsBefore, objectsAfter)
	}
	count := func(kind string) string {
		n := 0
		for _, o := range objectsBefore {
			if strings.HasPrefix(o, kind+"/") {
				n++
			}
		}
		return fmt.Sprintf("%d of %d", len(lost[kind]), n)
	}
	figures := map[string]string{
		"restart (hack/cluster.sh: stop began to healthy)": (time.Duration(restartMS) * time.Millisecond).String(),
		"requests":                               strconv.Itoa(len(calls)),
		"requests sent while it was restarting":  strconv.Itoa(during),
		"failed":                                 strconv.Itoa(len(failures(calls))),
		"Providers lost":                         count("Provider"),
		"DependencySets lost":                    count("DependencySet"),
		"controller Lease":                       "held by " + holderBefore + " before; " + back.lease,
		"controller replicas ready again at":     back.ready,
		"frontend pod":                           frontendFigure,
		"frontend sidecar stream":                streamFigure,
		"Provider change seen by frontend after": resynced.Sub(changed).Round(10*time.Millisecond).String() + " (patched once it was healthy)",
		"container restarts it caused":           restartsSince(restartsBefore, c.containerRestarts(t)),
	}
	t.Logf("%s restarted during steady traffic: %v", component, figures)
	return figures
}

// controllerRecovery is how ddi's controller came through a fault, from
// the Lease and the pods' Ready conditions (server-side times).
type controllerRecovery struct {
	lease string // who led afterwards, and since when if it changed
	ready string // when the last replica to go unready was ready again
}

// controllerBack waits until every controller replica is ready and one of
// them has renewed the Lease since healthy, then describes, relative to
// began: when the Lease was acquired, if it was acquired anew, and when
// the last replica that went unready was ready again.
func (c *localCluster) controllerBack(t *testing.T, replicas int, began, healthy time.Time) controllerRecovery {
	t.Helper()
	var ready []corev1.Pod
	var holder string
	var acquired time.Time
	eventually(t, 3*time.Minute, "every controller replica ready and the Lease renewed by one of them", func() (bool, error) {
		ready = ready[:0]
		for _, p := range c.pods(t, "ddi-system", controllerSelector) {
			if podReady(&p) {
				ready = append(ready, p)
			}
		}
		l, err := c.cs.CoordinationV1().Leases("ddi-system").Get(t.Context(), "ddi-controller", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil || l.Spec.RenewTime == nil || l.Spec.AcquireTime == nil {
			return false, err
		}
		holder, _, _ = strings.Cut(*l.Spec.HolderIdentity, "_")
		acquired = l.Spec.AcquireTime.Time
		leads := slices.ContainsFunc(ready, func(p corev1.Pod) bool { return p.Name == holder })
		return leads && l.Spec.RenewTime.After(healthy) && len(ready) == replicas, nil
	})
	var r controllerRecovery
	if acquired.After(began) {
		r.lease = fmt.Sprintf("acquired by %s at +%s", holder, acquired.Sub(began).Round(10*time.Millisecond))
	} else {
		r.lease = "kept by " + holder
	}
	r.ready = "every replica stayed ready"
	var last time.Time
	for _, p := range ready {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.LastTransitionTime.After(last) {
				last = cond.LastTransitionTime.Time
			}
		}
	}
	// Ready times are whole seconds.
	if !last.Before(began.Truncate(time.Second)) {
		r.ready = fmt.Sprintf("+%s (whole seconds)", last.Sub(began.Truncate(time.Second)))
	}
	return r
}

// sidecarStream waits until frontend's sidecar is connected to the
// control plane and describes what its stream went through since began:
// whether it stayed up, else how many reconnect attempts it made, when it
// first ended (its log) and when it connected again (its /readyz, whole
// seconds).
func (c *localCluster) sidecarStream(t *testing.T, pod string, reconnectsBefore float64, began time.Time) string {
	t.Helper()
	var rz struct {
		Connected bool   `json:"connected"`
		Detail    string `json:"detail"`
	}
	eventually(t, 2*time.Minute, "frontend's sidecar to be connected to the control plane", func() (bool, error) {
		code, body, err := c.sidecarGet(t, "ddi-demo", pod, "/readyz")
		if err != nil || code != http.StatusOK {
			return false, fmt.Errorf("GET /readyz = %d %s: %v", code, body, err)
		}
		if err := json.Unmarshal(body, &rz); err != nil {
			return false, err
		}
		return rz.Connected, nil
	})
	n := c.sidecarMetric(t, pod, "ddi_sidecar_stream_reconnects_total") - reconnectsBefore
	if n == 0 {
		return "stayed up (0 reconnects)"
	}
	s := fmt.Sprintf("%.0f reconnect attempt(s); ", n)
	if ended := logTimesAfter(t, c.containerLogs(t, "ddi-demo", pod, "ddi-sidecar"), "control plane stream ended", began); len(ended) > 0 {
		s += "first ended at +" + ended[0].Sub(began).Round(100*time.Millisecond).String() + ", "
	}
	return s + "connected again at +" + connectedSince(t, rz.Detail).Sub(began.Truncate(time.Second)).String() + " (readyz, whole seconds)"
}

// lostObjects returns the objects of before (ddiObjects) missing from
// after, by kind.
func lostObjects(before, after []string) map[string][]string {
	lost := map[string][]string{}
	for _, o := range before {
		if !slices.Contains(after, o) {
			kind, _, _ := strings.Cut(o, "/")
			lost[kind] = append(lost[kind], o)
		}
	}
	return lost
}

// restartComponent runs hack/cluster.sh restart component and returns the
// milliseconds it reports from the stop to healthy.
func (c *localCluster) restartComponent(t *testing.T, component string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.repo, "hack", "cluster.sh"), "restart", component)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/cluster.sh restart %s: %v\n%s", component, err, stderr.String())
	}
	t.Logf("hack/cluster.sh restart %s:\n%s", component, strings.TrimRight(stderr.String(), "\n"))
	ms, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("hack/cluster.sh restart %s printed %q, want milliseconds", component, stdout.String())
	}
	return ms
}

// ddiObjects lists every Provider and DependencySet as KIND/NAMESPACE/NAME.
func (c *localCluster) ddiObjects(t *testing.T) []string {
	t.Helper()
	out := c.kubectlRun(t, "get", "providers.ddi.dev,dependencysets.ddi.dev", "-A", "-o",
		`jsonpath={range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}{"\n"}{end}`)
	objs := strings.Fields(out)
	slices.Sort(objs)
	return objs
}

// containerRestarts returns the restart count of every container of every
// pod, keyed NAMESPACE/POD/CONTAINER (pod UID included, so a replaced pod
// is a new key).
func (c *localCluster) containerRestarts(t *testing.T) map[string]int32 {
	t.Helper()
	list, err := c.cs.CoreV1().Pods("").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	out := map[string]int32{}
	for _, p := range list.Items {
		for _, s := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
			out[p.Namespace+"/"+p.Name+"/"+s.Name+"@"+string(p.UID)] = s.RestartCount
		}
	}
	return out
}

// restartsSince describes the container restarts between two
// containerRestarts: "none", or each container that restarted with how
// many times, then the pods of ddi-system and knative-serving that are
// gone (deleted or replaced). The test namespaces are left out of the
// latter: Knative scales their revisions down meanwhile.
func restartsSince(before, after map[string]int32) string {
	var grew, gone []string
	for k, n := range before {
		name, _, _ := strings.Cut(k, "@")
		m, ok := after[k]
		if !ok {
			pod := name[:strings.LastIndex(name, "/")]
			ns, _, _ := strings.Cut(pod, "/")
			if !slices.Contains(testNamespaces, ns) && !slices.Contains(gone, pod) {
				gone = append(gone, pod)
			}
			continue
		}
		if m > n {
			grew = append(grew, fmt.Sprintf("%s +%d", name, m-n))
		}
	}
	slices.Sort(grew)
	slices.Sort(gone)
	s := "none"
	if len(grew) > 0 {
		s = strings.Join(grew, ", ")
	}
	if len(gone) > 0 {
		s += "; pods gone: " + strings.Join(gone, ", ")
	}
	return s
}

// logTimesAfter returns the kubelet timestamps of the log lines that
// contain s and were written after after.
func logTimesAfter(t *testing.T, logs, s string, after time.Time) []time.Time {
	t.Helper()
	var out []time.Time
	for line := range strings.Lines(logs) {
		ts, rest, _ := strings.Cut(line, " ")
		if !strings.Contains(rest, s) {
			continue
		}
		when, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("log timestamp %q: %v", ts, err)
		}
		if when.After(after) {
			out = append(out, when)
		}
	}
	return out
}

var connectedSinceRE = regexp.MustCompile(`connected to the control plane since (\S+);`)

// connectedSince reads when the sidecar's current stream connected from
// its /readyz detail (whole seconds).
func connectedSince(t *testing.T, detail string) time.Time {
	t.Helper()
	m := connectedSinceRE.FindStringSubmatch(detail)
	if m == nil {
		t.Fatalf("sidecar /readyz detail %q does not say since when it is connected", detail)
	}
	when, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatalf("sidecar /readyz detail %q: %v", detail, err)
	}
	return when
}
