//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// greeting is greeter's answer, relayed by frontend.
type greeting struct {
	Greeting string `json:"greeting"`
	Version  string `json:"version"`
	Revision string `json:"revision"`
	Pod      string `json:"pod"`
}

// call is one request of steady traffic.
type call struct {
	start, end time.Time
	status     int
	err        error
	answer     greeting
}

func (c call) ok() bool { return c.err == nil && c.status == http.StatusOK && c.answer.Greeting != "" }

// traffic sends GET requests from a few workers until stopped and records
// every one of them.
type traffic struct {
	mu    sync.Mutex
	calls []call
	stop  chan struct{}
	wg    sync.WaitGroup
}

// steadyTraffic starts workers that GET url with Host header host (empty:
// the URL's), each pausing between requests.
func steadyTraffic(url, host string, workers int, pause time.Duration) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	client := &http.Client{Timeout: 20 * time.Second}
	for range workers {
		tr.wg.Go(func() {
			for {
				select {
				case <-tr.stop:
					return
				default:
				}
				c := request(client, url, host)
				tr.mu.Lock()
				tr.calls = append(tr.calls, c)
				tr.mu.Unlock()
				select {
				case <-tr.stop:
					return
				case <-time.After(pause):
				}
			}
		})
	}
	return tr
}

// request sends one GET and decodes greeter's answer, if it is one.
func request(client *http.Client, url, host string) call {
	c := call{start: time.Now()}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		c.err = err
		return c
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		c.err, c.end = err, time.Now()
		return c
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	c.end, c.status, c.err = time.Now(), resp.StatusCode, err
	if c.status == http.StatusOK {
		_ = json.Unmarshal(body, &c.answer)
	} else if c.err == nil {
		c.err = fmt.Errorf("status %d: %s", c.status, strings.TrimSpace(string(body)))
	}
	return c
}

// snapshot returns the calls so far.
func (tr *traffic) snapshot() []call {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.calls)
}

// halt stops the workers and returns every call.
func (tr *traffic) halt() []call {
	close(tr.stop)
	tr.wg.Wait()
	return tr.snapshot()
}

// failures returns the failed calls.
func failures(calls []call) []call {
	var out []call
	for _, c := range calls {
		if !c.ok() {
			out = append(out, c)
		}
	}
	return out
}

// describeFailures formats up to ten failed calls.
func describeFailures(fs []call) string {
	var b strings.Builder
	for i, c := range fs {
		if i == 10 {
			fmt.Fprintf(&b, "  ... and %d more\n", len(fs)-10)
			break
		}
		fmt.Fprintf(&b, "  %s (+%s): %v\n", c.start.Format("15:04:05.000"), c.end.Sub(c.start).Round(time.Millisecond), c.err)
	}
	return b.String()
}

// latencies are durations in the order measured.
type latencies []time.Duration

// percentile returns the p-th percentile (nearest rank) of l.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(len(s)-1, i))]
}

func (l latencies) mean() time.Duration {
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return sum / time.Duration(max(1, len(l)))
}

func (l latencies) String() string {
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s max=%s mean=%s", len(l),
		ms(l.percentile(50)), ms(l.percentile(90)), ms(l.percentile(99)), ms(l.percentile(100)), ms(l.mean()))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// envInt reads a positive integer setting, def when unset.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q is not a positive integer", name, v)
	}
	return n
}

// containerMemory is what a running container uses, from the node.
type containerMemory struct {
	// CgroupUsage is the container cgroup's memory usage: what counts
	// against its limit (anonymous memory plus page cache charged to it).
	CgroupUsage int64
	// CgroupAnon is its anonymous memory (cgroup v1 rss, v2 anon).
	CgroupAnon int64
	// RSS is the resident set of its processes (VmRSS), shared file pages
	// of the binary included.
	RSS int64
}

func (m containerMemory) String() string {
	return fmt.Sprintf("cgroup usage %.1f MiB (anon %.1f MiB), process RSS %.1f MiB", mib(m.CgroupUsage), mib(m.CgroupAnon), mib(m.RSS))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// readContainerMemory reads a container's memory from its cgroup (v1 with
// kubelet's cgroupfs driver, or v2) and its processes.
func readContainerMemory(podUID, containerID string) (containerMemory, error) {
	var m containerMemory
	id := containerID[strings.Index(containerID, "://")+3:]
	var dir string
	for _, qos := range []string{"burstable/", "besteffort/", ""} {
		for _, root := range []string{"/sys/fs/cgroup/memory/kubepods/", "/sys/fs/cgroup/kubepods/"} {
			d := filepath.Join(root+qos, "pod"+podUID, id)
			if _, err := os.Stat(d); err == nil {
				dir = d
			}
		}
	}
	if dir == "" {
		return m, fmt.Errorf("no memory cgroup for container %s of pod %s", id, podUID)
	}
	if v, err := readInt(filepath.Join(dir, "memory.usage_in_bytes")); err == nil {
		m.CgroupUsage = v
		m.CgroupAnon = statField(filepath.Join(dir, "memory.stat"), "rss")
	} else if v, err := readInt(filepath.Join(dir, "memory.current")); err == nil {
		m.CgroupUsage = v
		m.CgroupAnon = statField(filepath.Join(dir, "memory.stat"), "anon")
	} else {
		return m, err
	}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return m, err
	}
	for pid := range strings.FieldsSeq(string(procs)) {
		m.RSS += statField(filepath.Join("/proc", pid, "status"), "VmRSS:") * 1024
	}
	return m, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// statField returns the number after "key " on a line of a stat file.
func statField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == key {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			return n
		}
	}
	return 0
}
