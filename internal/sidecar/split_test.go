package sidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// putProvider stores an http provider with one ready endpoint.
func putProvider(t *testing.T, store registry.Store, name, version, url string, secret map[string]string) {
	t.Helper()
	if _, err := store.Create(t.Context(), registry.Provider{Namespace: "team", Name: name, Type: "http", Version: version,
		Endpoints: []registry.Endpoint{{URL: url, Ready: true}}, Secret: secret}); err != nil {
		t.Fatal(err)
	}
}

// waitBinding polls GET /v1/bindings/{name} until ok accepts it.
func waitBinding(t *testing.T, url, name string, ok func(registry.Binding) bool) registry.Binding {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var b registry.Binding
	for time.Now().Before(deadline) {
		status, body, _ := do(t, "GET", url+"/v1/bindings/"+name, "")
		b = registry.Binding{}
		if status == 200 && json.Unmarshal(body, &b) == nil && ok(b) {
			return b
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("binding %s never became what the test waits for; last %+v", name, b)
	return b
}

// invokeMany sends n invocations of greeter from workers goroutines over
// kept-alive connections and counts the answers per backend name; any
// answer but a 200 from a backend is a failure.
func invokeMany(t *testing.T, url string, n, workers int) (map[string]int, int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var (
		mu       sync.Mutex
		counts   = map[string]int{}
		failures int
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				name, ok := invokeOnce(client, url)
				mu.Lock()
				if ok {
					counts[name]++
				} else {
					failures++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return counts, failures
}

func invokeOnce(client *http.Client, url string) (string, bool) {
	resp, err := client.Get(url + "/v1/invoke/greeter/hi")
	if err != nil {
		return "", false
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		return "", false
	}
	name, _, _ := strings.Cut(string(body), " ")
	return name, true
}

// TestInvokeSplitHonoursWeights runs the real control plane and the real
// sidecar (its own listener, so the fast path relays) with a 90/10 split
// between two providers, and sends 10,000 invocations from 16 concurrent
// callers: each backend's share must be within 2 percentage points of its
// weight. Smooth weighted round robin makes it exact, which the test also
// logs. The binding API, the watch and the binding files show the split
// and the primary as docs/invoke.md says.
func TestInvokeSplitHonoursWeights(t *testing.T) {
	cpURL, store := startRealControlPlane(t)
	v1, v2 := newBackend(t, "v1"), newBackend(t, "v2")
	putProvider(t, store, "greeter-v1", "1.0.0", v1.URL, map[string]string{"token": "one"})
	putProvider(t, store, "greeter-v2", "2.0.0", v2.URL, map[string]string{"token": "two"})
	root := t.TempDir()
	ts := startSidecar(t, Config{
		Listen:       "127.0.0.1:0",
		ControlPlane: cpURL,
		Consumer:     registry.Consumer{Namespace: "team", Name: "fn"},
		Dependencies: []registry.Dependency{mustDep("greeter=90%greeter-v1,10%greeter-v2")},
		BindingRoot:  root,
		ReconnectMin: 10 * time.Millisecond,
		ReconnectMax: 50 * time.Millisecond,
	})
	b := waitBinding(t, ts.url, "greeter", func(b registry.Binding) bool { return len(b.Split) == 2 && b.Split[1].Share == 10 })

	// The binding API: the primary's fields, the whole split beside them.
	if b.Provider != "greeter-v1" || b.Secret["token"] != "one" || b.Selector != "90%greeter-v1,10%greeter-v2" {
		t.Errorf("binding = %+v, want the primary greeter-v1 with its secret", b)
	}
	if b.Split[0].Provider != "greeter-v1" || !b.Split[0].Primary || b.Split[1].Provider != "greeter-v2" || b.Split[1].Weight != 10 {
		t.Errorf("binding split = %+v", b.Split)
	}
	// The files: the primary only.
	waitFor(t, "the binding files", func() bool { return exists(filepath.Join(root, "greeter", "token")) })
	if uri, err := os.ReadFile(filepath.Join(root, "greeter", "uri")); err != nil || string(uri) != v1.URL {
		t.Errorf("greeter/uri = %q (%v), want the primary's %s", uri, err, v1.URL)
	}
	if tok, err := os.ReadFile(filepath.Join(root, "greeter", "token")); err != nil || string(tok) != "one" {
		t.Errorf("greeter/token = %q (%v), want the primary's secret", tok, err)
	}
	// The watch: the binding event carries the split.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url+"/v1/watch", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ev := readEvents(t, bufio.NewReader(resp.Body), 1)[0]
	resp.Body.Close()
	if ev.Event != "binding" || !strings.Contains(ev.Data, `"split":[{"selector":"greeter-v1","weight":90,"share":90,"primary":true,`) {
		t.Errorf("watch event = %+v, want the binding with its split", ev)
	}

	const n = 10000
	counts, failures := invokeMany(t, ts.url, n, 16)
	t.Logf("10,000 invocations: v1 %d, v2 %d, failures %d", counts["v1"], counts["v2"], failures)
	if failures != 0 {
		t.Fatalf("%d of %d invocations failed", failures, n)
	}
	for name, want := range map[string]float64{"v1": 90, "v2": 10} {
		got := float64(counts[name]) * 100 / n
		if got < want-2 || got > want+2 {
			t.Errorf("backend %s received %.2f%% of invocations, want %v%% ± 2", name, got, want)
		}
	}
	if h1, h2 := v1.hits.Load(), v2.hits.Load(); h1+h2 != n {
		t.Errorf("backends saw %d + %d requests, want %d in all", h1, h2, n)
	}
}

// splitBinding is a greeter binding split between two backends.
func splitBinding(w1, w2 int, url1, url2 string) registry.Binding {
	b := registry.Binding{Name: "greeter", Provider: "greeter-v1", Namespace: "team", Type: "http", Version: "1.0.0",
		Endpoints: []registry.Endpoint{{URL: url1, Ready: true}}, Selector: "x"}
	shares := registry.ShareOut([]int{w1, w2})
	b.Split = []registry.SplitTarget{
		{Selector: "greeter-v1", Weight: w1, Share: shares[0], Primary: w1 >= w2, Provider: "greeter-v1", Namespace: "team", Type: "http", Endpoints: []registry.Endpoint{{URL: url1, Ready: true}}},
		{Selector: "greeter-v2", Weight: w2, Share: shares[1], Primary: w2 > w1, Provider: "greeter-v2", Namespace: "team", Type: "http", Endpoints: []registry.Endpoint{{URL: url2, Ready: true}}},
	}
	b.Selector = "greeter=" + itoa(w1) + "%greeter-v1," + itoa(w2) + "%greeter-v2"
	return b
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestInvokeSplitLiveWeightChange changes the weights of a split four
// times while 8 callers invoke without pause: no invocation fails, and
// after each change (acknowledged by the sidecar) the next 1,000
// invocations follow the new weights within 2 percentage points.
func TestInvokeSplitLiveWeightChange(t *testing.T) {
	f := newFakeCP(t)
	v1, v2 := newBackend(t, "v1"), newBackend(t, "v2")
	cfg := testConfig(f)
	cfg.Dependencies = []registry.Dependency{mustDep("greeter=90%greeter-v1,10%greeter-v2")}
	ts := startConnected(t, f, cfg, []registry.Binding{splitBinding(90, 10, v1.URL, v2.URL)}, nil)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	var (
		stop     atomic.Bool
		total    atomic.Int64
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				if _, ok := invokeOnce(client, ts.url); !ok {
					failures.Add(1)
				}
				total.Add(1)
			}
		})
	}
	version := int64(1)
	for _, w := range [][2]int{{50, 50}, {0, 100}, {100, 0}, {10, 90}} {
		version++
		f.push(t, version, []registry.Binding{splitBinding(w[0], w[1], v1.URL, v2.URL)}, nil)
		// The load goes on while a separate caller sends 1,000 more; the
		// backends count everything they received meanwhile (at most 8
		// invocations were under way at the old weights).
		h1, h2 := v1.hits.Load(), v2.hits.Load()
		_, fails := invokeMany(t, ts.url, 1000, 4)
		if fails != 0 {
			t.Errorf("weights %v: %d of 1000 measured invocations failed", w, fails)
		}
		d1, d2 := v1.hits.Load()-h1, v2.hits.Load()-h2
		for i, d := range []int64{d1, d2} {
			got := float64(d) * 100 / float64(d1+d2)
			if want := float64(w[i]); got < want-2 || got > want+2 {
				t.Errorf("weights %v: backend v%d received %.1f%% of %d invocations, want %v%% ± 2", w, i+1, got, d1+d2, want)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d invocations under load across 4 weight changes, %d failed", total.Load(), failures.Load())
	if total.Load() == 0 || failures.Load() != 0 {
		t.Errorf("%d of %d invocations under load failed, want none", failures.Load(), total.Load())
	}
}

// TestSplitPoolSkipsTargetsWithoutEndpoints: a target with a share but no
// invokable endpoint receives nothing; a split with none is not invokable.
func TestSplitPoolSkipsTargetsWithoutEndpoints(t *testing.T) {
	es := endpoints{byURL: map[string]*endpoint{}, metrics: newMetrics()}
	b := splitBinding(50, 50, "http://127.0.0.1:1", "postgres://db:5432/x")
	p := es.poolFor(&entry{binding: b})
	if p.split == nil || len(p.split.pools) != 1 {
		t.Fatalf("pool of %+v has targets %+v, want one (the http one)", b.Split, p.split)
	}
	for range 10 {
		if tp := p.target(); len(tp.endpoints) != 1 || tp.endpoints[0].url != "http://127.0.0.1:1" {
			t.Fatalf("target() = %+v, want the http target", tp.endpoints)
		}
	}
	b = splitBinding(50, 50, "redis://a:1", "postgres://db:5432/x")
	if p := es.poolFor(&entry{binding: b}); !p.empty() {
		t.Errorf("pool of a split without http endpoints is not empty: %+v", p)
	}
}

// TestSplitterIsExact: over every run of 100 picks, each target is picked
// exactly its weight times.
func TestSplitterIsExact(t *testing.T) {
	for _, w := range [][]int{{90, 10}, {33, 33, 34}, {1, 99}, {50, 0, 50}, {100}} {
		sp := &splitter{weights: w, current: make([]int, len(w))}
		for i := range w {
			sp.pools = append(sp.pools, &pool{next: atomic.Uint32{}})
			sp.total += w[i]
		}
		idx := map[*pool]int{}
		for i, p := range sp.pools {
			idx[p] = i
		}
		for round := range 3 {
			got := make([]int, len(w))
			for range 100 {
				got[idx[sp.next()]]++
			}
			for i := range w {
				if got[i] != w[i] {
					t.Errorf("weights %v round %d: target %d picked %d times, want %d", w, round, i, got[i], w[i])
				}
			}
		}
	}
}

// TestInvokeSplitRetriesWithinTarget: a split 50/50 whose first target has
// a dead endpoint beside a live one. Safe invocations that reach the dead
// endpoint are retried on the live endpoint of the same target, never on
// the other target: both targets still receive exactly half, and none
// fails.
func TestInvokeSplitRetriesWithinTarget(t *testing.T) {
	f := newFakeCP(t)
	v1, v2 := newBackend(t, "v1"), newBackend(t, "v2")
	b := splitBinding(50, 50, v1.URL, v2.URL)
	dead := registry.Endpoint{URL: closedURL(t), Ready: true}
	b.Split[0].Endpoints = append([]registry.Endpoint{dead}, b.Split[0].Endpoints...)
	b.Endpoints = b.Split[0].Endpoints
	cfg := testConfig(f)
	cfg.Dependencies = []registry.Dependency{mustDep("greeter=50%greeter-v1,50%greeter-v2")}
	ts := startConnected(t, f, cfg, []registry.Binding{b}, nil)

	counts, failures := invokeMany(t, ts.url, 1000, 4)
	if failures != 0 || counts["v1"] != 500 || counts["v2"] != 500 {
		t.Errorf("1,000 invocations: v1 %d, v2 %d, %d failed; want 500, 500 and none", counts["v1"], counts["v2"], failures)
	}
}
