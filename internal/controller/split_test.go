package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/sidecar"
)

// namedBackend answers every request with its name and counts them.
func namedBackend(t *testing.T, name string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

// TestDependencySetSplitLive runs the real API server, controller and
// sidecar: a DependencySet splits greeter 90/10 between two Providers, and
// its weights are changed twice while callers invoke without pause. Every
// change reaches the sidecar (its stream ends and it reconnects, serving
// the last snapshot meanwhile), traffic follows the new weights within 2
// percentage points, and no invocation fails. A pod whose annotation
// declares a split gets the same binding.
func TestDependencySetSplitLive(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{})
	ctx := t.Context()
	cp.Namespace(t, ns, nil)
	cp.ServiceAccount(t, ns, "fn")
	b1, hits1 := namedBackend(t, "v1")
	b2, hits2 := namedBackend(t, "v2")
	for name, url := range map[string]string{"greeter-v1": b1.URL, "greeter-v2": b2.URL} {
		create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.ProviderSpec{
			Type: "http", Version: "1.0.0", Endpoints: []v1alpha1.Endpoint{{URL: url, Ready: true}}}})
	}
	target := func(name string, w int32) v1alpha1.DependencyTarget {
		return v1alpha1.DependencyTarget{Weight: w, Provider: &v1alpha1.ProviderReference{Name: name}}
	}
	create(t, cp, &v1alpha1.DependencySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: v1alpha1.DependencySetSpec{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "web"}},
		Dependencies: []v1alpha1.Dependency{{Alias: "greeter", Targets: []v1alpha1.DependencyTarget{
			target("greeter-v1", 90), target("greeter-v2", 10)}}},
	}})
	web := pod("web-1", "web", "")
	create(t, cp, web)

	t.Run("annotation", func(t *testing.T) {
		p := pod("ann-1", "ann", "greeter=75%greeter-v1,25%greeter-v2")
		create(t, cp, p)
		m, err := firstMessage(t, cp, podToken(t, cp, p), protocol.Hello{SidecarID: "probe-ann"})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Bindings) != 1 || len(m.Bindings[0].Split) != 2 || m.Bindings[0].Split[0].Share != 75 || m.Bindings[0].Split[1].Share != 25 {
			t.Errorf("snapshot of a pod with a split annotation = %+v, want greeter split 75/25", m)
		}
	})

	sc, err := sidecar.New(sidecar.Config{ControlPlane: cp.StreamURL, CA: cp.StreamCA, TokenFile: podToken(t, cp, web),
		Consumer: registry.Consumer{Name: "web"}, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sc.Serve(sctx, ln) }()
	defer func() { cancel(); <-done }()
	base := "http://" + ln.Addr().String()

	waitShares := func(want ...int) {
		t.Helper()
		eventually(t, 20*time.Second, func() error {
			resp, err := http.Get(base + "/v1/bindings/greeter")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var b registry.Binding
			if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
				return err
			}
			var got []int
			for _, st := range b.Split {
				got = append(got, st.Share)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("shares %v, want %v", got, want)
			}
			return nil
		})
	}
	waitShares(90, 10)

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer hc.CloseIdleConnections()
	var (
		stop             atomic.Bool
		total, failures  atomic.Int64
		wg               sync.WaitGroup
		firstFailureMu   sync.Mutex
		firstFailureText string
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := hc.Get(base + "/v1/invoke/greeter/")
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				total.Add(1)
				if !ok {
					failures.Add(1)
					firstFailureMu.Lock()
					if firstFailureText == "" {
						firstFailureText = fmt.Sprint(err, resp)
					}
					firstFailureMu.Unlock()
				}
			}
		})
	}
	for _, w := range [][2]int32{{50, 50}, {0, 100}} {
		var ds v1alpha1.DependencySet
		if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &ds); err != nil {
			t.Fatal(err)
		}
		ds.Spec.Dependencies[0].Targets[0].Weight, ds.Spec.Dependencies[0].Targets[1].Weight = w[0], w[1]
		if err := cp.Client.Update(ctx, &ds); err != nil {
			t.Fatalf("update weights to %v: %v", w, err)
		}
		waitShares(int(w[0]), int(w[1]))
		h1, h2 := hits1.Load(), hits2.Load()
		for hits1.Load()+hits2.Load()-h1-h2 < 2000 {
			time.Sleep(5 * time.Millisecond)
		}
		d1, d2 := hits1.Load()-h1, hits2.Load()-h2
		for i, d := range []int64{d1, d2} {
			got := float64(d) * 100 / float64(d1+d2)
			if want := float64(w[i]); got < want-2 || got > want+2 {
				t.Errorf("weights %v: backend v%d received %.1f%% of %d invocations, want %v%% ± 2", w, i+1, got, d1+d2, want)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d invocations across 2 live weight changes, %d failed", total.Load(), failures.Load())
	if failures.Load() != 0 {
		t.Errorf("%d of %d invocations failed (first: %s), want none", failures.Load(), total.Load(), firstFailureText)
	}
}
