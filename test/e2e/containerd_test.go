//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// podSteps is what containerd did for one pod, from its log: when the
// pod's sandbox was ready, and when each container was created and
// started, in the order the kubelet asked for them.
type podSteps struct {
	sandboxReady time.Time
	containers   []string // in the order they were created
	created      map[string]time.Time
	started      map[string]time.Time
}

var (
	sandboxReadyRE = regexp.MustCompile(`RunPodSandbox for &PodSandboxMetadata\{Name:([^,]+),.*returns sandbox id \\"([0-9a-f]+)\\"`)
	createdRE      = regexp.MustCompile(`CreateContainer within sandbox \\"([0-9a-f]+)\\" for &ContainerMetadata\{Name:([^,]+),.*returns container id \\"([0-9a-f]+)\\"`)
	startedRE      = regexp.MustCompile(`StartContainer for \\"([0-9a-f]+)\\" returns successfully`)
	logTimeRE      = regexp.MustCompile(`^time="([^"]+)"`)
)

// containerdSteps reads the local cluster's containerd log (info level;
// hack/cluster.sh writes it to logs/containerd.log in the state folder)
// for the pod named pod. containerd logs each CRI call with nanoseconds, so
// these steps time a pod's start far more finely than the API's
// one-second timestamps.
func (c *localCluster) containerdSteps(t *testing.T, pod string) podSteps {
	t.Helper()
	f, err := os.Open(filepath.Join(c.state, "logs", "containerd.log"))
	if err != nil {
		t.Fatalf("containerd log: %v", err)
	}
	defer f.Close()
	st := podSteps{created: map[string]time.Time{}, started: map[string]time.Time{}}
	sandbox := ""
	byID := map[string]string{} // container id -> name
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m := logTimeRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		if m := sandboxReadyRE.FindStringSubmatch(line); m != nil && m[1] == pod {
			sandbox, st.sandboxReady = m[2], at
			// A pod's sandbox is made again after a failure: start over.
			st.containers, st.created, st.started = nil, map[string]time.Time{}, map[string]time.Time{}
			continue
		}
		if sandbox == "" {
			continue
		}
		if m := createdRE.FindStringSubmatch(line); m != nil && m[1] == sandbox {
			byID[m[3]] = m[2]
			st.containers = append(st.containers, m[2])
			st.created[m[2]] = at
			continue
		}
		if m := startedRE.FindStringSubmatch(line); m != nil {
			if name, ok := byID[m[1]]; ok {
				st.started[name] = at
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("containerd log: %v", err)
	}
	if sandbox == "" {
		t.Fatalf("containerd's log has no sandbox of pod %s", pod)
	}
	return st
}

// sinceSandbox is how long after its sandbox was ready container was
// started, or false when it was not.
func (s podSteps) sinceSandbox(container string) (time.Duration, bool) {
	at, ok := s.started[container]
	return at.Sub(s.sandboxReady), ok
}

// String lists the steps in milliseconds after the sandbox was ready,
// e.g. "ddi-sidecar created 5 started 97, user-container created 180
// started 258, queue-proxy created 262 started 340 (ms after the
// sandbox)".
func (s podSteps) String() string {
	ms := func(at time.Time) string { return fmt.Sprint(at.Sub(s.sandboxReady).Milliseconds()) }
	var parts []string
	for _, name := range s.containers {
		p := name + " created " + ms(s.created[name])
		if at, ok := s.started[name]; ok {
			p += " started " + ms(at)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ") + " (ms after the sandbox)"
}
