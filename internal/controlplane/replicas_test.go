package controlplane_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// replicaToken is what the replicas of these tests present to each other.
const replicaToken = "replica-token"

// replicaSet is a set of control plane replicas that know each other's
// URLs (and any extra peers a test adds), as EndpointSlices tell the
// controller's replicas on Kubernetes.
type replicaSet struct {
	mu    sync.Mutex
	peers []controlplane.Peer
	envs  []*env
}

// newReplicaSet runs n control planes, each with its own store (the
// sidecars are what differs between replicas), that ask each other for
// their sidecars.
func newReplicaSet(t *testing.T, n int, timeout, poll time.Duration) *replicaSet {
	t.Helper()
	rs := &replicaSet{}
	for i := range n {
		name := fmt.Sprintf("replica-%d", i)
		e := newEnvWith(t, func(o *controlplane.Options) {
			o.Replicas = &controlplane.Replicas{
				Self: name,
				Peers: func(context.Context) ([]controlplane.Peer, error) {
					rs.mu.Lock()
					defer rs.mu.Unlock()
					var out []controlplane.Peer
					for _, p := range rs.peers {
						if p.Name != name {
							out = append(out, p)
						}
					}
					return out, nil
				},
				Client: http.DefaultClient,
				Token:  func() (string, error) { return replicaToken, nil },
				Verify: func(_ context.Context, r *http.Request) error {
					if r.Header.Get("Authorization") != "Bearer "+replicaToken {
						return fmt.Errorf("%w: not a replica", controlplane.ErrForbidden)
					}
					return nil
				},
				Timeout: timeout,
				Poll:    poll,
			}
		})
		rs.envs = append(rs.envs, e)
		rs.addPeer(controlplane.Peer{Name: name, URL: e.http.URL})
	}
	return rs
}

func (rs *replicaSet) addPeer(p controlplane.Peer) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.peers = append(rs.peers, p)
}

// getGraph answers GET /v1/graph of e.
func getGraph(t *testing.T, e *env) controlplane.Graph {
	t.Helper()
	code, body := e.do(t, "GET", "/v1/graph", "")
	if code != 200 {
		t.Fatalf("GET /v1/graph = %d %s", code, body)
	}
	var g controlplane.Graph
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// graphSidecars lists a graph's sidecars as "function sidecar@replica".
func graphSidecars(g controlplane.Graph) []string {
	var out []string
	for _, f := range g.Functions {
		for _, s := range f.Sidecars {
			out = append(out, f.Name+" "+s.ID+"@"+s.Replica)
		}
	}
	slices.Sort(out)
	return out
}

// TestReplicasMergeSidecars: GET /v1/graph and GET /v1/sidecars on either
// of two replicas show the sidecars connected to both, with the replica
// each is on, each function's dependencies resolved, and each replica's
// count.
func TestReplicasMergeSidecars(t *testing.T) {
	rs := newReplicaSet(t, 2, 2*time.Second, time.Hour)
	a, b := rs.envs[0], rs.envs[1]
	for _, e := range rs.envs {
		e.do(t, "PUT", "/v1/providers/default/g1", `{"type":"http","version":"1.2.0","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}]}`)
		waitRevision(t, e)
	}
	openStream(t, a, protocol.Hello{SidecarID: "sc-a", Consumer: registry.Consumer{Name: "frontend"}, Dependencies: []string{"greeter=http@^1"}}).next(t)
	openStream(t, b, protocol.Hello{SidecarID: "sc-b", Consumer: registry.Consumer{Name: "backend"}, Dependencies: []string{"greeter=http@^1", "db=postgresql@^15"}}).next(t)

	want := []string{"backend sc-b@replica-1", "frontend sc-a@replica-0"}
	for i, e := range rs.envs {
		g := getGraph(t, e)
		if diff := cmp.Diff(want, graphSidecars(g)); diff != "" {
			t.Errorf("replica %d: GET /v1/graph sidecars (-want +got):\n%s", i, diff)
		}
		self, other := fmt.Sprintf("replica-%d", i), fmt.Sprintf("replica-%d", 1-i)
		wantReplicas := []controlplane.ReplicaStatus{{Name: self, Self: true, Sidecars: 1}, {Name: other, Sidecars: 1}}
		if diff := cmp.Diff(wantReplicas, g.Replicas); diff != "" {
			t.Errorf("replica %d: GET /v1/graph replicas (-want +got):\n%s", i, diff)
		}
		for _, f := range g.Functions {
			if f.Name == "backend" {
				wantDeps := []controlplane.GraphDependency{
					{Alias: "db", Selector: "postgresql@^15", Unresolved: "no provider has type postgresql"},
					{Alias: "greeter", Selector: "http@^1", Provider: "default/g1"},
				}
				if diff := cmp.Diff(wantDeps, f.Dependencies); diff != "" {
					t.Errorf("replica %d: backend's dependencies (-want +got):\n%s", i, diff)
				}
			}
		}

		code, body := e.do(t, "GET", "/v1/sidecars", "")
		var list controlplane.SidecarList
		if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
			t.Fatalf("replica %d: GET /v1/sidecars = %d %s", i, code, body)
		}
		var got []string
		for _, s := range list.Sidecars {
			got = append(got, s.Consumer.Name+" "+s.ID+"@"+s.Replica)
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" || len(list.Replicas) != 2 {
			t.Errorf("replica %d: GET /v1/sidecars (-want +got):\n%s replicas %+v", i, diff, list.Replicas)
		}
	}
}

// TestReplicasUnansweredPeer: a replica that does not answer (it accepts
// connections and says nothing) or is gone (nothing listens) is reported
// with its error, and the answer comes within the peer timeout with every
// other replica's sidecars.
func TestReplicasUnansweredPeer(t *testing.T) {
	const timeout = 300 * time.Millisecond
	rs := newReplicaSet(t, 2, timeout, time.Hour)
	openStream(t, rs.envs[1], protocol.Hello{SidecarID: "sc-b", Consumer: registry.Consumer{Name: "backend"}}).next(t)

	stuck, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.Close() })
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := stuck.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneURL := "http://" + gone.Addr().String()
	gone.Close()
	rs.addPeer(controlplane.Peer{Name: "replica-stuck", URL: "http://" + stuck.Addr().String()})
	rs.addPeer(controlplane.Peer{Name: "replica-gone", URL: goneURL})

	start := time.Now()
	g := getGraph(t, rs.envs[0])
	took := time.Since(start)
	// The stuck replica never answers: without the peer timeout the request
	// would hang. The bound is generous, so that a loaded machine passes.
	if took > 10*timeout {
		t.Errorf("GET /v1/graph with a replica that does not answer took %s: it waited on the replica (peer timeout %s)", took, timeout)
	}
	if diff := cmp.Diff([]string{"backend sc-b@replica-1"}, graphSidecars(g)); diff != "" {
		t.Errorf("sidecars with a stuck and a gone replica (-want +got):\n%s", diff)
	}
	byName := map[string]controlplane.ReplicaStatus{}
	for _, r := range g.Replicas {
		byName[r.Name] = r
	}
	if r := byName["replica-stuck"]; r.Error != "no answer within 300ms" {
		t.Errorf("the stuck replica is reported as %+v, want error %q", r, "no answer within 300ms")
	}
	if r := byName["replica-gone"]; !strings.Contains(r.Error, "connection refused") {
		t.Errorf("the gone replica is reported as %+v, want connection refused", r)
	}
	if r := byName["replica-1"]; r.Error != "" || r.Sidecars != 1 {
		t.Errorf("replica-1 is reported as %+v, want 1 sidecar and no error", r)
	}
	t.Logf("GET /v1/graph with a stuck and a gone replica answered in %s", took.Round(time.Millisecond))
}

// TestReplicaRouteOnlyForReplicas: GET /v1/replica/sidecars answers a
// caller that Replicas.Verify accepts with this replica's sidecars only,
// refuses others with 403, and is 404 on a control plane without
// replicas (`ddi dev`), whose graph names no replicas.
func TestReplicaRouteOnlyForReplicas(t *testing.T) {
	rs := newReplicaSet(t, 2, time.Second, time.Hour)
	openStream(t, rs.envs[0], protocol.Hello{SidecarID: "sc-a", Consumer: registry.Consumer{Name: "frontend"}}).next(t)
	openStream(t, rs.envs[1], protocol.Hello{SidecarID: "sc-b", Consumer: registry.Consumer{Name: "backend"}}).next(t)

	code, body := rs.envs[0].do(t, "GET", controlplane.ReplicaPath, "")
	if code != 403 {
		t.Errorf("GET %s without a replica's token = %d %s, want 403", controlplane.ReplicaPath, code, body)
	}
	req, _ := http.NewRequest("GET", rs.envs[0].http.URL+controlplane.ReplicaPath, nil)
	req.Header.Set("Authorization", "Bearer "+replicaToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Replica  string
		Sidecars []struct {
			ID    string
			Owner string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET %s as a replica = %d, %v", controlplane.ReplicaPath, resp.StatusCode, err)
	}
	if ans.Replica != "replica-0" || len(ans.Sidecars) != 1 || ans.Sidecars[0].ID != "sc-a" || ans.Sidecars[0].Owner != "sc-a" {
		t.Errorf("GET %s as a replica = %+v, want replica-0's own sidecar sc-a (owner sc-a) only", controlplane.ReplicaPath, ans)
	}

	dev := newEnv(t)
	openStream(t, dev, protocol.Hello{SidecarID: "sc-d", Consumer: registry.Consumer{Name: "frontend"}}).next(t)
	if code, body := dev.do(t, "GET", controlplane.ReplicaPath, ""); code != 404 {
		t.Errorf("GET %s on a single process = %d %s, want 404", controlplane.ReplicaPath, code, body)
	}
	if _, body := dev.do(t, "GET", "/v1/graph", ""); strings.Contains(body, `"replicas"`) || strings.Contains(body, `"replica"`) {
		t.Errorf("GET /v1/graph on a single process = %s, want no replicas named", body)
	}
}

// TestReplicasGraphEvents: the event stream of one replica sends a new
// graph when a sidecar connects to or leaves another replica, within the
// poll interval; one poll serves every open event stream.
func TestReplicasGraphEvents(t *testing.T) {
	const poll = 200 * time.Millisecond
	rs := newReplicaSet(t, 2, time.Second, poll)
	a, b := rs.envs[0], rs.envs[1]
	openStream(t, a, protocol.Hello{SidecarID: "sc-a", Consumer: registry.Consumer{Name: "frontend"}}).next(t)

	events := graphEvents(t, a)
	events.wait(t, "the first graph with both replicas", 5*time.Second, func(g controlplane.Graph) bool {
		return cmp.Equal(graphSidecars(g), []string{"frontend sc-a@replica-0"}) && len(g.Replicas) == 2
	})
	ctx, cancel := context.WithCancel(t.Context())
	st := openStreamCtx(t, ctx, b, protocol.Hello{SidecarID: "sc-b", Consumer: registry.Consumer{Name: "backend"}})
	st.next(t)
	start := time.Now()
	events.wait(t, "sc-b on replica-1", 5*time.Second, func(g controlplane.Graph) bool {
		return cmp.Equal(graphSidecars(g), []string{"backend sc-b@replica-1", "frontend sc-a@replica-0"})
	})
	t.Logf("a sidecar connected to the other replica appeared after %s (poll %s)", time.Since(start).Round(time.Millisecond), poll)
	if d := time.Since(start); d > 10*poll {
		t.Errorf("a sidecar connected to the other replica appeared after %s, want within a few polls of %s", d, poll)
	}
	cancel()
	start = time.Now()
	events.wait(t, "sc-b gone", 5*time.Second, func(g controlplane.Graph) bool {
		return cmp.Equal(graphSidecars(g), []string{"frontend sc-a@replica-0"})
	})
	if d := time.Since(start); d > 10*poll {
		t.Errorf("a sidecar that left the other replica disappeared after %s, want within a few polls of %s", d, poll)
	}
}

// graphStream reads a graph event stream.
type graphStream struct{ events chan controlplane.Graph }

func graphEvents(t *testing.T, e *env) *graphStream {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", e.http.URL+"/v1/graph/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/graph/events = %d", resp.StatusCode)
	}
	gs := &graphStream{events: make(chan controlplane.Graph, 64)}
	go func() {
		defer close(gs.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var g controlplane.Graph
				if json.Unmarshal([]byte(data), &g) == nil {
					gs.events <- g
				}
			}
		}
	}()
	return gs
}

func (gs *graphStream) wait(t *testing.T, what string, d time.Duration, ok func(controlplane.Graph) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case g, open := <-gs.events:
			if !open {
				t.Fatalf("the event stream ended before %s", what)
			}
			if ok(g) {
				return
			}
		case <-deadline:
			t.Fatalf("no graph event with %s within %s", what, d)
		}
	}
}
