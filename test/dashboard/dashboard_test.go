package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

var update = flag.Bool("update", false, "write the screenshot to docs/dashboard.png")

// chromium returns the path of a Chromium or Chrome binary, or skips the
// test saying how to install one.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DDI_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("SKIPPED: no Chromium found on PATH (chromium, chromium-browser, google-chrome) and DDI_CHROMIUM is unset: " +
		"install it with `apt-get install chromium` (hack/test.sh does) to run the dashboard's browser test")
	return ""
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ddiBinary builds cmd/ddi once per test binary.
func ddiBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ddi-dashboard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ddi")
		if out, err := exec.Command("go", "build", "-o", binPath, "ddi.dev/ddi/cmd/ddi").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// safeBuffer collects a child's output.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the ddi binary with args until the test ends or the returned
// stop is called (SIGTERM, then SIGKILL after 10 s); its output goes to the
// log when the test fails.
func start(t *testing.T, name string, args ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command(ddiBinary(t), args...)
	out := &safeBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		select {
		case <-done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, out.String())
		}
	})
	return stop
}

// ddi runs the ddi binary to completion.
func ddi(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(ddiBinary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ddi %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startDev runs `ddi dev` on a free loopback port and waits until it is
// ready; it returns the control plane's URL.
func startDev(t *testing.T, flags ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start(t, "ddi dev", append(flags, "dev", "--listen", addr, "--data", t.TempDir())...)
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ddi dev at %s not ready within 20s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browser starts headless Chromium and returns a tab context. Console
// errors and warnings, uncaught exceptions and browser log entries of
// those levels (a failed request, a refused script) are collected; the
// test fails on any at its end.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	watchConsole(t, ctx, func() { cancel(); cancelAlloc() })
	return ctx
}

// watchConsole collects the console errors and warnings, uncaught
// exceptions and browser log entries of those levels (a failed request, a
// refused script) of the tab ctx; when the test ends it calls stop and
// fails the test if there were any.
func watchConsole(t *testing.T, ctx context.Context, stop func()) {
	t.Helper()
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx)
	read := make(chan struct{})
	go func() {
		defer close(read)
		for m, err := range messages {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stop()
		<-read
		mu.Lock()
		defer mu.Unlock()
		if len(problems) > 0 {
			t.Errorf("the page logged %d problem(s):\n%s", len(problems), strings.Join(problems, "\n"))
		}
	})
}

// run runs chromedp actions with a 30 s bound.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript expression in the page every 10 ms until it is
// true, and returns how long that took; it fails the test after limit.
func waitJS(t *testing.T, ctx context.Context, what, expr string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if eval[bool](t, ctx, "!!("+expr+")") {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not true within %v: %s (status: %s)", what, limit, expr, eval[string](t, ctx, `document.querySelector('#status').textContent`))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// put stores a provider with the control plane's REST API.
func put(t *testing.T, cp, ns, name, body string) {
	t.Helper()
	req, err := http.NewRequest("PUT", cp+"/v1/providers/"+ns+"/"+name, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT provider %s/%s = %d %s", ns, name, resp.StatusCode, b)
	}
}

// node returns a JavaScript expression for the element of a node key.
func node(key string) string { return fmt.Sprintf(`document.querySelector('[data-k="%s"]')`, key) }

// TestDashboardLive drives the page of a running `ddi dev` with real
// sidecars (`ddi run`) in headless Chromium: the graph renders, a new
// provider and the rebinding it causes appear within 1 s without a
// reload, an unresolved dependency shows its reason, a click explains a
// function's dependencies, and the page logs no error.
func TestDashboardLive(t *testing.T) {
	chromium(t)
	cp := startDev(t)
	ddi(t, "--control-plane", cp, "provider", "add", "greeter-v1", "--type", "http", "--version", "1.0.0", "--url", "http://127.0.0.1:9001")
	ddi(t, "--control-plane", cp, "provider", "add", "greeter-v3", "--type", "http", "--version", "3.0.0", "--url", "http://127.0.0.1:9003")
	start(t, "ddi run frontend", "--control-plane", cp, "run", "--name", "frontend",
		"--dep", "greeter=http@^1", "--dep", "db=postgresql@^15", "--", "sleep", "600")
	start(t, "ddi run checkout", "--control-plane", cp, "run", "--name", "checkout",
		"--dep", "greeter=greeter-v1", "--", "sleep", "600")

	ctx := browser(t)
	run(t, ctx, "open the dashboard", chromedp.Navigate(cp+"/dashboard/"))
	waitJS(t, ctx, "first paint", `document.body.dataset.painted === 'true'`, 10*time.Second)
	// Both real sidecars connected and acknowledged their snapshot.
	waitJS(t, ctx, "two functions with acknowledged snapshots",
		node("f:default/frontend")+` && `+node("f:default/checkout")+
			` && !/acked v0\b/.test(`+node("f:default/frontend")+`.textContent)`, 20*time.Second)
	waitJS(t, ctx, "frontend's greeter drawn to greeter-v1",
		node("f:default/frontend")+`.textContent.includes('greeter=http@^1 → default/greeter-v1') && `+node("p:default/greeter-v1"), 5*time.Second)
	waitJS(t, ctx, "db unresolved with its reason",
		`[...document.querySelectorAll('g.unresolved')].some(g => g.textContent.includes('db: no provider has type postgresql'))`, 5*time.Second)

	// A new provider appears, and frontend is rebound to it, live.
	added := time.Now()
	ddi(t, "--control-plane", cp, "provider", "add", "greeter-v2", "--type", "http", "--version", "1.5.0", "--url", "http://127.0.0.1:9002")
	stored := time.Since(added)
	took := waitJS(t, ctx, "greeter-v2 drawn and frontend rebound to it",
		node("p:default/greeter-v2")+` && `+node("f:default/frontend")+`.textContent.includes('greeter=http@^1 → default/greeter-v2')`, 5*time.Second)
	t.Logf("new provider and rebinding on the page %v after `ddi provider add` returned (which took %v)", took, stored)
	if took > time.Second {
		t.Errorf("the new provider and the rebinding took %v to appear, want under 1s", took)
	}
	// The provider whose dependency is now satisfied leaves the unresolved list.
	ddi(t, "--control-plane", cp, "provider", "add", "db", "--type", "postgresql", "--version", "15.2.0", "--url", "postgres://127.0.0.1:5432/app")
	took = waitJS(t, ctx, "db resolved", `document.querySelectorAll('g.unresolved').length === 0 && `+
		node("f:default/frontend")+`.textContent.includes('db=postgresql@^15 → default/db')`, 5*time.Second)
	if took > time.Second {
		t.Errorf("the binding of db took %v to appear, want under 1s", took)
	}
	ddi(t, "--control-plane", cp, "provider", "rm", "db")
	waitJS(t, ctx, "db unresolved again", `[...document.querySelectorAll('g.unresolved')].some(g => g.textContent.includes('db: no provider has type postgresql'))`, 5*time.Second)

	// Clicking frontend explains its dependencies.
	run(t, ctx, "click frontend", chromedp.Click(chromedp.CSS(`[data-k="f:default/frontend"] rect.box`)))
	waitJS(t, ctx, "explanations shown", `document.querySelector('#explanations') && `+
		`document.querySelector('#explanations').textContent.includes('chose default/greeter-v2') && `+
		`document.querySelector('#explanations').textContent.includes('lost to default/greeter-v2: version 1.5.0 is higher than 1.0.0') && `+
		`document.querySelector('#explanations').textContent.includes('version 3.0.0 is outside ^1') && `+
		`document.querySelector('#explanations').textContent.includes('unresolved: no provider has type postgresql')`, 5*time.Second)

	// The explanation follows a change of the providers without a click.
	ddi(t, "--control-plane", cp, "provider", "add", "greeter-v4", "--type", "http", "--version", "1.9.0", "--url", "http://127.0.0.1:9004")
	took = waitJS(t, ctx, "explanation updated", `document.querySelector('#explanations').textContent.includes('chose default/greeter-v4') && `+
		`document.querySelector('#explanations').textContent.includes('lost to default/greeter-v4: version 1.9.0 is higher than 1.5.0')`, 5*time.Second)
	if took > time.Second {
		t.Errorf("the explanation took %v to follow a new provider, want under 1s", took)
	}

	// A provider that becomes unready is drawn so, and frontend moves off
	// it; a provider click shows its details and consumers.
	put(t, cp, "default", "greeter-v4", `{"type":"http","version":"1.9.0","endpoints":[{"url":"http://127.0.0.1:9004","ready":false}]}`)
	took = waitJS(t, ctx, "greeter-v4 unready, frontend back on greeter-v2",
		node("p:default/greeter-v4")+`.classList.contains('unready') && `+node("p:default/greeter-v4")+`.textContent.includes('0/1 ready') && `+
			node("f:default/frontend")+`.textContent.includes('greeter=http@^1 → default/greeter-v2')`, 5*time.Second)
	if took > time.Second {
		t.Errorf("an unready provider took %v to show, want under 1s", took)
	}
	run(t, ctx, "click greeter-v1", chromedp.Click(chromedp.CSS(`[data-k="p:default/greeter-v1"] rect.box`)))
	waitJS(t, ctx, "provider details", `document.querySelector('#details').textContent.includes('provider default/greeter-v1') && `+
		`document.querySelector('#details').textContent.includes('Bound consumers (1)') && `+
		`document.querySelector('#details').textContent.includes('greeter=greeter-v1')`, 5*time.Second)

	// A function that starts appears, and disappears when it stops.
	stopBilling := start(t, "ddi run billing", "--control-plane", cp, "run", "--name", "billing", "--namespace", "finance",
		"--dep", "ledger=*/http@^3", "--", "sleep", "600")
	// greeter-v3 is the only http@^3, and its scope keeps it in default.
	waitJS(t, ctx, "billing appears, its ledger unresolved by scope", node("f:finance/billing")+` && `+
		`[...document.querySelectorAll('g.unresolved')].some(g => g.dataset.alias === 'ledger' && g.textContent.includes('1 matching provider(s), none whose scope admits this consumer (namespace finance)'))`, 20*time.Second)
	stopBilling()
	took = waitJS(t, ctx, "billing gone", `!`+node("f:finance/billing"), 5*time.Second)
	if took > time.Second {
		t.Errorf("a stopped function took %v to leave the page, want under 1s", took)
	}

	// Filters: by name.
	run(t, ctx, "filter by name", chromedp.SendKeys(chromedp.CSS("#f-name"), "checkout"))
	waitJS(t, ctx, "only checkout and its provider", node("f:default/checkout")+` && !`+node("f:default/frontend")+
		` && `+node("p:default/greeter-v1")+` && !`+node("p:default/greeter-v3")+` && !`+node("p:default/greeter-v4"), 5*time.Second)
	eval[bool](t, ctx, `(document.querySelector('#f-name').value = '', document.querySelector('#f-name').dispatchEvent(new Event('input')))`)
	waitJS(t, ctx, "both functions again", node("f:default/frontend")+` && `+node("f:default/checkout"), 5*time.Second)

	// The screenshot shows the explanation of frontend's dependencies.
	run(t, ctx, "click frontend again", chromedp.Click(chromedp.CSS(`[data-k="f:default/frontend"] rect.box`)))
	waitJS(t, ctx, "explanation with the unready provider", `document.querySelector('#explanations') && `+
		`document.querySelector('#explanations').textContent.includes('0 of 1 endpoints ready')`, 5*time.Second)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, png)
}

func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "ddi-dashboard.png")
	if *update {
		path = filepath.Join("..", "..", "docs", "dashboard.png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot saved to %s (%d bytes)", path, len(png))
}

// TestDashboardAtScale loads the page of a `ddi dev` holding 1,000
// providers and 1,000 connected functions (sidecar streams opened over the
// control plane's stream protocol) and measures, in the browser, the time
// from navigation to the first frame painted with the graph. It fails only
// above the 2 s the dashboard promises (docs/dashboard.md); the figure is
// logged for bench/RESULTS-dashboard.md.
func TestDashboardAtScale(t *testing.T) {
	chromium(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short: starts 1,000 streams")
	}
	cp := startDev(t, "--log-level", "warn") // not 2,000 connect and disconnect lines
	const n = 1000
	types := []string{"http", "grpc", "redis", "postgresql"}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := registry.Provider{Type: types[i%len(types)], Version: fmt.Sprintf("1.%d.0", i%7),
				Endpoints: []registry.Endpoint{{URL: fmt.Sprintf("http://127.0.0.1:%d", 20000+i), Ready: i%13 != 0}}}
			b, _ := json.Marshal(p)
			req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v1/providers/ns-%d/p-%04d", cp, i%10, i), bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				errs <- fmt.Errorf("PUT provider %d = %d", i, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// 1,000 functions, each a stream as a sidecar opens it, with three
	// dependencies: a type selector, a named provider, and one that stays
	// unresolved for every tenth function.
	streamClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	ctx, cancel := context.WithCancel(context.Background())
	var streams sync.WaitGroup
	t.Cleanup(func() { cancel(); streams.Wait() })
	connected := make(chan error, n)
	for i := range n {
		deps := []string{"api=http@^1", fmt.Sprintf("store=p-%04d", i)}
		if i%10 == 0 {
			deps = append(deps, "queue=kafka@^3")
		} else {
			deps = append(deps, "cache=redis@*")
		}
		hello := protocol.Hello{SidecarID: fmt.Sprintf("sc-%04d", i), Consumer: registry.Consumer{Namespace: fmt.Sprintf("ns-%d", i%10), Name: fmt.Sprintf("fn-%04d", i)}, Dependencies: deps}
		b, _ := json.Marshal(hello)
		streams.Add(1)
		go func() {
			defer streams.Done()
			req, _ := http.NewRequestWithContext(ctx, "POST", cp+protocol.StreamPath, bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			resp, err := streamClient.Do(req)
			if err != nil {
				connected <- err
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 4096)
			_, err = resp.Body.Read(buf) // the first snapshot
			connected <- err
			for err == nil {
				_, err = resp.Body.Read(buf)
			}
		}()
	}
	for range n {
		if err := <-connected; err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("open a stream: %v", err)
		}
	}
	var g struct {
		Functions []json.RawMessage `json:"functions"`
		Providers []json.RawMessage `json:"providers"`
	}
	resp, err := http.Get(cp + "/v1/graph")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(g.Functions) != n || len(g.Providers) != n {
		t.Fatalf("graph has %d functions and %d providers, want %d of each", len(g.Functions), len(g.Providers), n)
	}

	// Three loads, each in a fresh tab of a fresh browser context; the
	// median counts, so that one load slowed by the shared machine does not
	// decide alone.
	bctx := browser(t)
	var paints []float64
	for i := range 3 {
		tab, cancelTab := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
		// The first action on a tab creates it and must run without a
		// deadline (a deadline's end would close the tab).
		if err := chromedp.Do(tab); err != nil {
			cancelTab()
			t.Fatalf("open a tab: %v", err)
		}
		watchConsole(t, tab, cancelTab)
		run(t, tab, "open the dashboard", chromedp.Navigate(cp+"/dashboard/"))
		waitJS(t, tab, "first paint", `document.body.dataset.painted === 'true'`, 20*time.Second)
		paint := eval[float64](t, tab, `window.ddiFirstPaintMs`)
		render := eval[float64](t, tab, `window.ddiLastRenderMs`)
		shown := eval[map[string]int](t, tab, `window.ddiShown`)
		drawn := eval[int](t, tab, `document.querySelectorAll('[data-k]').length`)
		t.Logf("load %d, 1,000 functions + 1,000 providers: first paint %.0f ms after navigation start (render %.0f ms), %d+%d laid out, %d elements drawn",
			i+1, paint, render, shown["functions"], shown["providers"], drawn)
		if shown["functions"] != n || shown["providers"] != n || drawn == 0 {
			t.Errorf("%v laid out and %d drawn, want %d of each laid out and some drawn", shown, drawn, n)
		}
		paints = append(paints, paint)
		bctx = tab
	}
	slices.Sort(paints)
	if paints[1] > 2000 {
		t.Errorf("median first paint %.0f ms after navigation (loads: %v), want under 2000 ms", paints[1], paints)
	}

	// Only what is near the visible part is drawn; scrolling draws the
	// rest: the last function appears at the bottom.
	last := node("f:ns-9/fn-0999")
	if eval[bool](t, bctx, "!!"+last) {
		t.Errorf("the last of 1,000 functions is drawn before scrolling: the page draws everything")
	}
	eval[bool](t, bctx, `(document.querySelector('#canvas').scrollTop = 1e9, true)`)
	if took := waitJS(t, bctx, "the last function drawn after scrolling", last, 5*time.Second); took > time.Second {
		t.Errorf("scrolling to the end took %v to draw, want under 1s", took)
	}
	eval[bool](t, bctx, `(document.querySelector('#canvas').scrollTop = 0, true)`)

	// Filters narrow the drawing at once: a namespace...
	eval[bool](t, bctx, `(document.querySelector('#f-namespace').value = 'ns-3', document.querySelector('#f-namespace').dispatchEvent(new Event('change')))`)
	waitJS(t, bctx, "only ns-3", `window.ddiShown.functions === 100 && document.querySelectorAll('.fn').length > 0 && `+
		`[...document.querySelectorAll('.fn')].every(g => g.dataset.k.startsWith('f:ns-3/'))`, 5*time.Second)
	// ... and a type: the functions with a redis dependency, and those bound
	// to a redis provider by name.
	// Nine in ten functions have cache=redis@*; of the tenth (queue
	// instead), those whose store=p-NNNN is a ready redis provider.
	var byName []string
	for i := 0; i < n; i += 10 {
		if types[i%len(types)] == "redis" && i%13 != 0 {
			byName = append(byName, fmt.Sprintf("f:ns-%d/fn-%04d", i%10, i))
		}
	}
	wantRedis := n - n/10 + len(byName)
	byNameJS, _ := json.Marshal(byName)
	eval[bool](t, bctx, `(document.querySelector('#f-namespace').value = '', document.querySelector('#f-type').value = 'redis', document.querySelector('#f-type').dispatchEvent(new Event('change')))`)
	waitJS(t, bctx, "only redis", fmt.Sprintf(`window.ddiShown.functions === %d && `, wantRedis)+
		`[...document.querySelectorAll('.prov')].some(g => g.textContent.includes(' · redis ')) && `+
		`[...document.querySelectorAll('.fn')].every(g => g.textContent.includes('=redis@') || `+string(byNameJS)+`.includes(g.dataset.k))`, 5*time.Second)
}
