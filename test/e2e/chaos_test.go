//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"go.etcd.io/bbolt"

	"ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/bolt"
)

// The chaos test's knobs. The defaults keep it inside CI's normal test run
// (about a minute); docs/reliability.md shows a longer run.
const (
	envChaosDuration  = "DDI_CHAOS_DURATION"  // how long faults and load run, a Go duration (default 40s)
	envChaosFunctions = "DDI_CHAOS_FUNCTIONS" // functions started with ddi run (default 20)
	envChaosSeed      = "DDI_CHAOS_SEED"      // seed of the fault schedule (default: the clock; logged)
)

const (
	// greeterTTL is the lease `ddi demo greeter --register` asks for.
	greeterTTL = 10 * time.Second
	// peerTTL is the lease of the providers the functions register
	// through their own sidecars.
	peerTTL = 5 * time.Second
	// writerNames is how many provider names the writer cycles through.
	writerNames = 100
	// cpKey is the control plane's key in a liveness.
	cpKey = "control-plane"
)

type chaosConfig struct {
	duration  time.Duration
	functions int
	greeters  int // run-time providers: ddi run -- ddi demo greeter --register
	declared  int // ddi provider add, two flapping endpoints each
	seed      uint64
}

func chaosConfigFromEnv(t *testing.T) chaosConfig {
	t.Helper()
	c := chaosConfig{duration: 40 * time.Second, functions: 20, seed: uint64(time.Now().UnixNano())}
	if v := os.Getenv(envChaosDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive Go duration such as 5m", envChaosDuration, v)
		}
		c.duration = d
	}
	if v := os.Getenv(envChaosFunctions); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			t.Fatalf("%s=%q: want a number of functions, at least 2", envChaosFunctions, v)
		}
		c.functions = n
	}
	if v := os.Getenv(envChaosSeed); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned integer", envChaosSeed, v)
		}
		c.seed = n
	}
	c.greeters = min(4, c.functions)
	c.declared = min(4, c.functions)
	return c
}

// TestChaos runs a control plane, functions with their own sidecars, and
// declared and run-time registered providers as real processes on
// loopback, and for DDI_CHAOS_DURATION, all at once: SIGKILLs the control
// plane (ddi dev) every few seconds while a writer hammers provider writes
// through it, checks the store file after every kill and restarts it on the
// same data and address; SIGKILLs random ddi run process groups (sidecar
// and command) and restarts them; stops and restarts provider endpoints. A
// load generator resolves and invokes through every sidecar all along and
// counts outcomes. The targets, what each counts and why, are in
// docs/reliability.md.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test: real processes for about a minute")
	}
	cfg := chaosConfigFromEnv(t)
	h := newChaosHarness(t, cfg)
	began := time.Now()

	h.prepare()
	h.startControlPlane()
	h.declareProviders()
	h.startMembers()
	h.waitAllBound(90 * time.Second)
	setup := time.Since(began)

	watchCtx, stopWatching := context.WithCancel(t.Context())
	var watching sync.WaitGroup
	watching.Go(func() { h.stalls.run(watchCtx) })
	chaosCtx, stopChaos := context.WithTimeout(t.Context(), cfg.duration)
	defer stopChaos()
	var chaos sync.WaitGroup
	for _, f := range h.functions {
		chaos.Go(func() { h.load(chaosCtx, f) })
	}
	chaos.Go(func() { h.writeProviders(chaosCtx) })
	chaos.Go(func() { h.killControlPlane(chaosCtx) })
	chaos.Go(func() { h.killMembers(chaosCtx) })
	chaos.Go(func() { h.flapEndpoints(chaosCtx) })
	chaos.Wait()

	settle := time.Now()
	h.settleRegistrations(30 * time.Second)
	h.checkDeclared()
	h.stopSupervision()
	h.checkLeasesEnd()
	h.checkFinalStore()
	stopWatching()
	watching.Wait()
	h.report(setup, time.Since(settle), time.Since(began))
}

// chaosHarness owns every process, server and counter of one chaos run.
type chaosHarness struct {
	t    *testing.T
	cfg  chaosConfig
	rng  *rand.Rand // used by the test goroutine only; others derive their own
	bin  string
	data string
	cp   *chaosControlPlane
	live *liveness
	http *http.Client

	endpoints []*flapServer // the declared providers' endpoints
	peerURL   string        // base URL of the stable backend behind every peer registration
	functions []*member
	greeters  []*member
	writer    writer
	tally     tally
	stalls    stallWatch

	superviseCtx    context.Context
	stopSupervising context.CancelFunc
	supervised      sync.WaitGroup

	faults struct {
		flaps, flapRestartFailures atomic.Int64
	}
	end struct {
		declaredChecked, declaredLost              int
		registrationsExpected, duplicated, missing int
		leased, leaked                             int
		leasesGoneAfter, mostOverdue               time.Duration
		storeChecks, storeCorrupt, finalProviders  int
	}
}

func newChaosHarness(t *testing.T, cfg chaosConfig) *chaosHarness {
	h := &chaosHarness{
		t:    t,
		cfg:  cfg,
		rng:  rand.New(rand.NewPCG(cfg.seed, 1)),
		bin:  ddiBinary(t),
		data: t.TempDir(),
		live: &liveness{m: map[string]upState{}},
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}},
	}
	h.superviseCtx, h.stopSupervising = context.WithCancel(context.Background())
	t.Cleanup(func() {
		h.stopSupervising()
		h.supervised.Wait()
		for _, m := range h.members() {
			m.stop(h)
			if t.Failed() {
				t.Logf("--- %s (last incarnation) output ---\n%s", m.name, m.lastOutput())
			}
		}
		for _, s := range h.endpoints {
			s.stop()
		}
	})
	t.Logf("chaos: %s, %d functions, %d greeters, %d declared providers, %s=%d", cfg.duration, cfg.functions, cfg.greeters, cfg.declared, envChaosSeed, cfg.seed)
	return h
}

func (h *chaosHarness) members() []*member { return append(slices.Clone(h.functions), h.greeters...) }

// prepare starts the declared providers' endpoints on fixed ports (they
// restart on the same address) and the stable backend behind the providers
// the functions register, and picks the fixed addresses of the control
// plane and of the functions' sidecars.
func (h *chaosHarness) prepare() {
	ports := map[string]bool{}
	for i := range h.cfg.declared {
		name := fmt.Sprintf("chaos-decl-%d", i)
		for range 2 {
			addr := fixedAddr(h.t, h.rng, ports)
			s := &flapServer{addr: addr, url: "http://" + addr, body: "provider " + name + "\n", live: h.live}
			if err := s.start(); err != nil {
				h.t.Fatal(err)
			}
			h.endpoints = append(h.endpoints, s)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	backend := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		fmt.Fprintf(w, "provider %s\n", name)
	})}
	go backend.Serve(ln)
	h.t.Cleanup(func() { backend.Close() })
	h.peerURL = "http://" + ln.Addr().String()
	h.cp = &chaosControlPlane{data: h.data, addr: fixedAddr(h.t, h.rng, ports)}
	h.cp.url = "http://" + h.cp.addr
	for i := range h.cfg.functions {
		h.functions = append(h.functions, &member{name: fmt.Sprintf("chaos-fn-%d", i), sidecar: fixedAddr(h.t, h.rng, ports)})
	}
}

func (h *chaosHarness) startControlPlane() {
	if err := h.cp.start(h); err != nil {
		h.t.Fatal(err)
	}
}

// declareProviders adds the declared providers with the CLI, each with two
// endpoints.
func (h *chaosHarness) declareProviders() {
	for i := range h.cfg.declared {
		args := []string{"--control-plane", h.cp.url, "provider", "add", fmt.Sprintf("chaos-decl-%d", i),
			"--type", "http", "--version", "1.0.0",
			"--url", h.endpoints[2*i].url, "--url", h.endpoints[2*i+1].url}
		if out, err := exec.Command(h.bin, args...).CombinedOutput(); err != nil {
			h.t.Fatalf("ddi provider add: %v\n%s", err, out)
		}
	}
}

// startMembers starts the greeters (each registers itself through its own
// sidecar) and the functions (each registers a peer provider through its
// sidecar and depends on a declared provider, a greeter and its
// neighbour's peer provider), each under a supervisor that restarts it.
func (h *chaosHarness) startMembers() {
	for i := range h.cfg.greeters {
		m := &member{
			name: fmt.Sprintf("chaos-greeter-%d", i),
			args: []string{"--control-plane", h.cp.url, "run", "--name", fmt.Sprintf("chaos-greeter-%d", i), "--ready-timeout", "60s", "--",
				h.bin, "demo", "greeter", "--version", fmt.Sprintf("2.%d.0", i), "--register", fmt.Sprintf("chaos-rt-%d", i)},
			provider: fmt.Sprintf("chaos-rt-%d", i),
		}
		h.greeters = append(h.greeters, m)
	}
	n := len(h.functions)
	for i, f := range h.functions {
		f.provider = fmt.Sprintf("chaos-peer-%d", i)
		f.args = []string{"--control-plane", h.cp.url, "run", "--name", f.name, "--sidecar-listen", f.sidecar, "--ready-timeout", "60s",
			"--dep", fmt.Sprintf("decl=chaos-decl-%d", i%h.cfg.declared),
			"--dep", fmt.Sprintf("rt=chaos-rt-%d", i%h.cfg.greeters),
			"--dep", fmt.Sprintf("peer=chaos-peer-%d", (i+1)%n),
			"--", "sleep", "3600"}
	}
	for _, m := range h.members() {
		m.kill = make(chan time.Duration, 1)
		h.supervised.Go(func() { m.supervise(h.superviseCtx, h) })
	}
}

// waitAllBound waits until every function's sidecar resolves all three of
// its dependencies.
func (h *chaosHarness) waitAllBound(timeout time.Duration) {
	waitFor(h.t, timeout, "every function bound to decl, rt and peer", func() bool {
		for _, f := range h.functions {
			for _, alias := range chaosAliases {
				code, _, err := h.get(context.Background(), "http://"+f.sidecar+"/v1/bindings/"+alias, nil)
				if err != nil || code != http.StatusOK {
					return false
				}
			}
		}
		return true
	})
}

var chaosAliases = []string{"decl", "rt", "peer"}

// get sends one GET and reads the answer.
func (h *chaosHarness) get(ctx context.Context, url string, header http.Header) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// --- load ------------------------------------------------------------------

// chaosBinding is the part of a binding the load generator checks.
type chaosBinding struct {
	Provider  string `json:"provider"`
	Version   string `json:"version"`
	Revision  int64  `json:"revision"`
	Endpoints []struct {
		URL   string `json:"url"`
		Ready bool   `json:"ready"`
	} `json:"endpoints"`
}

func (b chaosBinding) readyURLs() []string {
	var out []string
	for _, e := range b.Endpoints {
		if e.Ready {
			out = append(out, e.URL)
		}
	}
	return out
}

// aliasState is what the load generator knows of one dependency in one
// sidecar's life.
type aliasState struct {
	gen    uint64  // the sidecar incarnation it belongs to
	bound  bool    // this incarnation has answered 200 for it
	lastCP upState // the control plane's state when the last 200 was asked for
	// settled: when the last 200 was asked for, the control plane was
	// down and the sidecar had already said so in /readyz, so it had
	// applied every snapshot the control plane sent before it died.
	settled bool
}

// loadState is one function's load generator's memory.
type loadState struct {
	aliases map[string]*aliasState
	// disconnected is when the sidecar last said "connected":false while
	// the control plane was down: its incarnation and the control plane's
	// state then.
	disconnected struct {
		ok      bool
		sidecar uint64
		cp      upState
	}
}

// load resolves and invokes f's dependencies in turn until ctx ends: a
// resolve, an invoke, and a resolve again, so that an invoke whose two
// resolves name the same revision is known to have used that binding.
// Before each round it reads the sidecar's /readyz.
func (h *chaosHarness) load(ctx context.Context, f *member) {
	ls := &loadState{aliases: map[string]*aliasState{}}
	for i := 0; ctx.Err() == nil; i++ {
		h.probeConnected(ctx, f, ls)
		alias := chaosAliases[i%len(chaosAliases)]
		st := ls.aliases[alias]
		if st == nil {
			st = &aliasState{}
			ls.aliases[alias] = st
		}
		before, ok := h.resolve(ctx, f, alias, st, ls)
		if ok {
			h.invoke(ctx, f, alias, before, st, ls)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probeConnected records whether f's sidecar says it is disconnected while
// the control plane is down. A sidecar marks itself disconnected only after
// it has read its stream to the end, so by then it has applied whatever
// snapshot was still in flight when the control plane was killed.
func (h *chaosHarness) probeConnected(ctx context.Context, f *member, ls *loadState) {
	s0, c0 := h.live.get(f.name), h.live.get(cpKey)
	code, body, err := h.get(ctx, "http://"+f.sidecar+"/readyz", nil)
	s1, c1 := h.live.get(f.name), h.live.get(cpKey)
	var ready struct {
		Connected bool `json:"connected"`
	}
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &ready) != nil {
		return
	}
	if !ready.Connected && stayedUp(s0, s1) && !c0.up && c0 == c1 {
		ls.disconnected.ok, ls.disconnected.sidecar, ls.disconnected.cp = true, s0.gen, c0
	}
}

// resolve asks f's sidecar for a binding and counts the answer. A failure
// counts against the target when the sidecar had answered 200 for the
// alias earlier in its life, unless it is a 404 for a run-time provider
// and either the control plane was up at some time since that 200 (the
// registry may really have dropped it: a lease that lapsed) or that 200
// came before the sidecar had read its stream to the end (a snapshot sent
// just before the SIGKILL may have been applied after it). A timeout is
// decided at the end, against the stalls of the machine.
func (h *chaosHarness) resolve(ctx context.Context, f *member, alias string, st *aliasState, ls *loadState) (chaosBinding, bool) {
	s0, c0 := h.live.get(f.name), h.live.get(cpKey)
	began := time.Now()
	code, body, err := h.get(ctx, "http://"+f.sidecar+"/v1/bindings/"+alias, nil)
	ended := time.Now()
	s1, c1 := h.live.get(f.name), h.live.get(cpKey)
	if ctx.Err() != nil {
		return chaosBinding{}, false // the run ended during the request
	}
	var b chaosBinding
	if err == nil && code == http.StatusOK {
		if jerr := json.Unmarshal(body, &b); jerr != nil {
			err = jerr
		}
	}
	h.tally.mu.Lock()
	defer h.tally.mu.Unlock()
	n := &h.tally
	n.resolves++
	if !stayedUp(s0, s1) {
		n.resolveSidecarDown++
		return chaosBinding{}, false
	}
	if st.gen != s0.gen {
		*st = aliasState{gen: s0.gen}
	}
	switch {
	case err == nil && code == http.StatusOK:
		n.resolveOK++
		if !c0.up && !c1.up && c0.gen == c1.gen {
			n.resolveOKWhileCPDown++
		}
		d := ls.disconnected
		st.bound, st.lastCP = true, c0
		st.settled = d.ok && d.sidecar == s0.gen && d.cp == c0 && !c0.up
		return b, true
	case !st.bound:
		n.resolveBeforeSnapshot++
	case code == http.StatusNotFound && alias != "decl" && wasUp(st.lastCP, c1):
		n.resolveUnbound++
	case code == http.StatusNotFound && alias != "decl" && !st.settled:
		n.resolveInFlight++
	case timedOut(code, err):
		n.timeouts = append(n.timeouts, timeout{began: began, ended: ended, resolve: true,
			what: fmt.Sprintf("resolve %s/%s: %d %v", f.name, alias, code, err)})
	default:
		n.resolveFailed++
		n.sample(fmt.Sprintf("resolve %s/%s: %d %v %.200s (control plane up %t→%t)", f.name, alias, code, err, body, c0.up, c1.up))
	}
	return chaosBinding{}, false
}

// timedOut reports whether a request ended by a deadline: the sidecar's
// invoke timeout (504) or the test client's.
func timedOut(code int, err error) bool {
	var ne net.Error
	return code == http.StatusGatewayTimeout || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// invoke calls alias through f's sidecar and counts the outcome. An
// invoke is eligible when the binding stayed the same around it (the two
// resolves name one revision) and one of its ready endpoints was up from
// before the invoke was sent until after it was answered; an eligible
// invoke must succeed, since the sidecar retries a GET on another endpoint.
func (h *chaosHarness) invoke(ctx context.Context, f *member, alias string, before chaosBinding, st *aliasState, ls *loadState) {
	urls := before.readyURLs()
	s0, e0 := h.live.get(f.name), h.live.states(urls)
	began := time.Now()
	code, body, err := h.get(ctx, "http://"+f.sidecar+"/v1/invoke/"+alias+"/", http.Header{"Ddi-Timeout": {"5s"}})
	ended := time.Now()
	s1, e1 := h.live.get(f.name), h.live.states(urls)
	if ctx.Err() != nil {
		return
	}
	after, ok := h.resolve(ctx, f, alias, st, ls)
	if ctx.Err() != nil {
		return
	}
	eligible := false
	for i := range urls {
		eligible = eligible || stayedUp(e0[i], e1[i])
	}
	succeeded := err == nil && code == http.StatusOK
	right := succeeded && answers(before, string(body))

	h.tally.mu.Lock()
	defer h.tally.mu.Unlock()
	n := &h.tally
	n.invokes++
	switch {
	case !stayedUp(s0, s1):
		n.invokeSidecarDown++
		return
	case succeeded && !right:
		n.invokeWrong++
		n.sample(fmt.Sprintf("invoke %s/%s bound to %s answered %.200q", f.name, alias, before.Provider, body))
		return
	case succeeded:
		n.invokeOK++
	}
	switch {
	case !ok || after.Revision != before.Revision:
		n.invokeRebound++
	case eligible && succeeded:
		n.invokeEligibleOK++
	case eligible && timedOut(code, err):
		n.timeouts = append(n.timeouts, timeout{began: began, ended: ended,
			what: fmt.Sprintf("invoke %s/%s (%s): %d %v", f.name, alias, before.Provider, code, err)})
	case eligible:
		n.invokeFailed++
		n.sample(fmt.Sprintf("invoke %s/%s (%s, endpoints %v): %d %v %.200s", f.name, alias, before.Provider, urls, code, err, body))
	case !succeeded:
		n.invokeProviderDown++
	}
}

// answers reports whether body is the answer of the provider b names.
func answers(b chaosBinding, body string) bool {
	if strings.HasPrefix(b.Provider, "chaos-rt-") {
		return strings.Contains(body, "hello from greeter "+b.Version+" ")
	}
	return body == "provider "+b.Provider+"\n"
}

// tally is the run's counts. Every field is guarded by mu.
type tally struct {
	mu sync.Mutex

	resolves, resolveOK, resolveOKWhileCPDown int
	resolveFailed                             int // target 0
	resolveBeforeSnapshot, resolveSidecarDown int
	resolveUnbound, resolveInFlight           int
	invokes, invokeOK, invokeEligibleOK       int
	invokeFailed, invokeWrong                 int // target 0
	invokeProviderDown, invokeRebound         int
	invokeSidecarDown                         int
	samples                                   []string
	// timeouts are failures that are timeouts, decided at the end: one
	// that overlaps a stall of the test process (which serves the
	// providers) is excused, any other counts as a failure.
	timeouts []timeout
	excused  int
}

type timeout struct {
	began, ended time.Time
	resolve      bool
	what         string
}

// judgeTimeouts counts every timeout either as excused by a stall or as a
// failure.
func (n *tally) judgeTimeouts(stalls *stallWatch) {
	for _, to := range n.timeouts {
		switch {
		case stalls.overlaps(to.began, to.ended):
			n.excused++
		case to.resolve:
			n.resolveFailed++
			n.sample(to.what + " (no stall of the test process)")
		default:
			n.invokeFailed++
			n.sample(to.what + " (no stall of the test process)")
		}
	}
	n.timeouts = nil
}

// stallWatch measures how late a 100ms ticker of the test process fires:
// while the machine does not run the test process, the providers it serves
// (the declared endpoints, the peer backend) cannot answer, whatever ddi
// does.
type stallWatch struct {
	mu      sync.Mutex
	spans   [][2]time.Time // stalls of at least minStall
	longest time.Duration
}

const minStall = time.Second

func (s *stallWatch) run(ctx context.Context) {
	const tick = 100 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		late := now.Sub(last) - tick
		s.mu.Lock()
		s.longest = max(s.longest, late)
		if late >= minStall {
			s.spans = append(s.spans, [2]time.Time{last, now})
		}
		s.mu.Unlock()
		last = now
	}
}

func (s *stallWatch) overlaps(began, ended time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.spans {
		if sp[0].Before(ended) && sp[1].After(began) {
			return true
		}
	}
	return false
}

func (n *tally) sample(s string) {
	if len(n.samples) < 20 {
		n.samples = append(n.samples, time.Now().Format("15:04:05.000")+" "+s)
	}
}

// --- faults ----------------------------------------------------------------

// killControlPlane SIGKILLs the control plane every 2-5s, as soon as a
// provider write is in flight (waiting up to 1s for one), checks the store
// file it left, and restarts it on the same data and address 0.2-1.5s
// later. It leaves it running when ctx ends.
func (h *chaosHarness) killControlPlane(ctx context.Context) {
	rng := rand.New(rand.NewPCG(h.cfg.seed, 2))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(rng, 2*time.Second, 5*time.Second)):
		}
		h.cp.kill(h, h.writer.awaitInFlight(time.Second))
		h.checkStore("after SIGKILL")
		time.Sleep(jitter(rng, 200*time.Millisecond, 1500*time.Millisecond))
		if err := h.cp.start(h); err != nil {
			h.t.Errorf("restart the control plane: %v", err)
			return
		}
	}
}

// killMembers SIGKILLs a random function's or greeter's ddi run process
// group (its sidecar and its command) every 1-3s; its supervisor restarts
// it 0.2-1s later.
func (h *chaosHarness) killMembers(ctx context.Context) {
	rng := rand.New(rand.NewPCG(h.cfg.seed, 3))
	all := h.members()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(rng, time.Second, 3*time.Second)):
		}
		m := all[rng.IntN(len(all))]
		select {
		case m.kill <- jitter(rng, 200*time.Millisecond, time.Second):
		default:
		}
	}
}

// flapEndpoints stops or restarts a random declared endpoint every
// 0.2-0.8s; both endpoints of a provider may be down at once. At the end
// every endpoint is up again.
func (h *chaosHarness) flapEndpoints(ctx context.Context) {
	rng := rand.New(rand.NewPCG(h.cfg.seed, 4))
	defer func() {
		for _, s := range h.endpoints {
			for s.start() != nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(rng, 200*time.Millisecond, 800*time.Millisecond)):
		}
		s := h.endpoints[rng.IntN(len(h.endpoints))]
		if s.isUp() {
			s.stop()
		} else if err := s.start(); err != nil {
			h.faults.flapRestartFailures.Add(1)
			continue
		}
		h.faults.flaps.Add(1)
	}
}

func jitter(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

// writer hammers provider creates and updates through the control plane,
// so that many SIGKILLs land in the middle of a write, and remembers which
// writes were acknowledged.
type writer struct {
	inFlight atomic.Bool

	mu        sync.Mutex
	acked     map[string]int // name -> sequence number of its last acknowledged write
	attempted map[string]int // name -> sequence number of its last attempted write
	acks      int
	fails     int
	viaCLI    int
}

// awaitInFlight waits up to timeout for a write to be in flight and
// reports whether one is, so that most kills land in the middle of one.
func (w *writer) awaitInFlight(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !w.inFlight.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return w.inFlight.Load()
}

// writeProviders writes until ctx ends: provider chaos-w-(i mod 100) at
// version 1.i.0 with a 2 KiB config value, so a commit spans pages; one
// write in 20 goes through `ddi provider add`, the others through the
// client the CLI uses.
func (h *chaosHarness) writeProviders(ctx context.Context) {
	w := &h.writer
	w.acked, w.attempted = map[string]int{}, map[string]int{}
	c := &client.Client{BaseURL: h.cp.url, HTTP: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	for i := 1; ctx.Err() == nil; i++ {
		name := fmt.Sprintf("chaos-w-%03d", i%writerNames)
		version := fmt.Sprintf("1.%d.0", i)
		blob := strings.Repeat(strconv.Itoa(i%10), 2048)
		w.mu.Lock()
		w.attempted[name] = i
		w.mu.Unlock()
		w.inFlight.Store(true)
		var err error
		cli := i%20 == 0
		if cli {
			var out []byte
			out, err = exec.Command(h.bin, "--control-plane", h.cp.url, "provider", "add", name, "--type", "chaoswrite",
				"--version", version, "--url", "http://127.0.0.1:9/", "--config", "blob="+blob).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, out)
			}
		} else {
			_, _, err = c.PutProvider(ctx, registry.Provider{Namespace: registry.DefaultNamespace, Name: name, Type: "chaoswrite", Version: version,
				Endpoints: []registry.Endpoint{{URL: "http://127.0.0.1:9/", Ready: true}}, Config: map[string]string{"blob": blob}})
		}
		w.inFlight.Store(false)
		w.mu.Lock()
		if err == nil {
			w.acked[name] = i
			w.acks++
			if cli {
				w.viaCLI++
			}
		} else {
			w.fails++
		}
		w.mu.Unlock()
		if err != nil {
			time.Sleep(50 * time.Millisecond) // the control plane is down
		}
	}
}

// --- control plane ---------------------------------------------------------

// chaosControlPlane is `ddi dev` on one data directory and address,
// started again after every kill.
type chaosControlPlane struct {
	data, addr, url string
	p               *proc

	starts, kills, killsMidWrite int
	downtime                     time.Duration
	downSince                    time.Time
	failedStarts                 int
}

// start runs ddi dev and waits until it is ready (its store opened and
// listed) and answers a provider list.
func (cp *chaosControlPlane) start(h *chaosHarness) error {
	cp.starts++
	cp.p = start(h.t, fmt.Sprintf("control-plane-%d", cp.starts), "dev", "--data", cp.data, "--listen", cp.addr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, err := h.get(context.Background(), cp.url+"/readyz", nil)
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case <-cp.p.done:
			cp.failedStarts++
			return fmt.Errorf("control plane %d exited before it was ready: %s", cp.starts, chaosTail(cp.p.out.String()))
		default:
		}
		if time.Now().After(deadline) {
			cp.failedStarts++
			return fmt.Errorf("control plane %d not ready within 20s: %s", cp.starts, chaosTail(cp.p.out.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := (&client.Client{BaseURL: cp.url}).ListProviders(context.Background(), ""); err != nil {
		cp.failedStarts++
		return fmt.Errorf("control plane %d lists no providers: %w", cp.starts, err)
	}
	if !cp.downSince.IsZero() {
		cp.downtime += time.Since(cp.downSince)
	}
	h.live.set(cpKey, true)
	return nil
}

// kill SIGKILLs the control plane. The liveness says down before the
// signal is sent.
func (cp *chaosControlPlane) kill(h *chaosHarness, midWrite bool) {
	h.live.set(cpKey, false)
	cp.downSince = time.Now()
	cp.kills++
	if midWrite {
		cp.killsMidWrite++
	}
	_ = cp.p.cmd.Process.Kill()
	select {
	case <-cp.p.done:
	case <-time.After(30 * time.Second):
		h.t.Errorf("control plane did not die within 30s of SIGKILL")
	}
}

func chaosTail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// checkStore opens the store file of a dead control plane twice: with
// bbolt read-only, running its consistency check over every page, and as
// ddi's store, listing every provider. Either failing counts as a corrupt
// store.
func (h *chaosHarness) checkStore(when string) {
	h.end.storeChecks++
	path := filepath.Join(h.data, "registry.db")
	if err := checkBolt(path); err != nil {
		h.end.storeCorrupt++
		h.t.Errorf("store %s: %v", when, err)
		return
	}
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		h.end.storeCorrupt++
		h.t.Errorf("store %s: %v", when, err)
		return
	}
	defer s.Close()
	list, _, err := s.List(context.Background())
	if err != nil {
		h.end.storeCorrupt++
		h.t.Errorf("store %s: list: %v", when, err)
	}
	h.end.finalProviders = len(list)
}

// checkBolt runs bbolt's consistency check on the file at path.
func checkBolt(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("bbolt open: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// --- members: ddi run processes under supervision ----------------------------

// member is one `ddi run` (a function or a greeter) that a supervisor
// keeps running: it restarts it after a chaos kill or after it exits on
// its own (a greeter whose registration the sidecar refused while the
// control plane was down exits).
type member struct {
	name     string
	args     []string
	sidecar  string // functions: fixed sidecar address
	provider string // the run-time provider it registers
	kill     chan time.Duration

	mu   sync.Mutex
	p    *groupProc // the running incarnation, nil once stopped
	last *groupProc // the last incarnation, for its output
	url  string     // greeters: the endpoint it registered, once it said so

	kills, exits, registrations atomic.Int64
	// lapses counts, over its incarnations, how often its sidecar found
	// its registration's lease lapsed (renewals failed for a ttl while the
	// control plane was down) and registered it again.
	lapses atomic.Int64
	// recreated counts registrations a restarted function had to create
	// anew (201, not 200): the lease of its predecessor's had lapsed
	// before the new sidecar could take it over.
	recreated atomic.Int64
}

// ended counts what an incarnation's output says about lapsed leases.
func (m *member) ended(p *groupProc) {
	m.lapses.Add(int64(strings.Count(p.out.String(), "lease lapsed; registering again")))
}

// supervise runs m until ctx ends, then leaves its last incarnation
// running.
func (m *member) supervise(ctx context.Context, h *chaosHarness) {
	for ctx.Err() == nil {
		p, err := startGroup(h.bin, m.args...)
		if err != nil {
			h.t.Errorf("start %s: %v", m.name, err)
			return
		}
		m.mu.Lock()
		m.p, m.last = p, p
		m.mu.Unlock()
		h.live.set(m.name, true)
		incarnation, cancel := context.WithCancel(ctx)
		if m.sidecar != "" {
			go m.registerPeer(incarnation, h)
		}
		delay := m.watch(ctx, p, h)
		cancel()
		if ctx.Err() != nil {
			return
		}
		time.Sleep(delay)
	}
}

// watch waits for p to be killed, to exit, or for ctx to end, and returns
// how long to wait before the restart.
func (m *member) watch(ctx context.Context, p *groupProc, h *chaosHarness) time.Duration {
	first := p.first
	for {
		select {
		case line := <-first:
			first = nil
			if addr, ok := strings.CutPrefix(line, "listening on "); ok && m.sidecar == "" {
				m.mu.Lock()
				m.url = "http://" + addr
				m.mu.Unlock()
				h.live.set(m.url, true)
			}
		case d := <-m.kill:
			m.down(h)
			if err := p.kill(); err != nil {
				h.t.Errorf("%s: %v", m.name, err)
			}
			m.ended(p)
			m.kills.Add(1)
			return d
		case <-p.done:
			m.down(h)
			m.ended(p)
			m.exits.Add(1)
			return 300 * time.Millisecond
		case <-ctx.Done():
			return 0
		}
	}
}

// down marks m and its endpoint down, before it is killed.
func (m *member) down(h *chaosHarness) {
	h.live.set(m.name, false)
	m.mu.Lock()
	url := m.url
	m.url = ""
	m.mu.Unlock()
	if url != "" {
		h.live.set(url, false)
	}
}

// stop SIGKILLs m's current incarnation.
func (m *member) stop(h *chaosHarness) {
	m.down(h)
	m.mu.Lock()
	p := m.p
	m.p = nil
	m.mu.Unlock()
	if p != nil {
		if err := p.kill(); err != nil {
			h.t.Errorf("%s: %v", m.name, err)
		}
		m.ended(p)
	}
}

func (m *member) lastOutput() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		return ""
	}
	return chaosTail(m.last.out.String())
}

// registerPeer registers the function's peer provider through its own
// sidecar, retrying until it succeeds or the incarnation ends.
func (m *member) registerPeer(ctx context.Context, h *chaosHarness) {
	body := fmt.Sprintf(`{"type":"http","version":"1.0.0","endpoints":[{"url":%q}],"ttl":%q}`, h.peerURL+"/"+m.provider, peerTTL)
	h.live.set(h.peerURL+"/"+m.provider, true) // the backend never stops
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+m.sidecar+"/v1/providers/"+m.provider, strings.NewReader(body))
		if err != nil {
			h.t.Errorf("register %s: %v", m.provider, err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if resp, err := h.http.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
				if m.registrations.Add(1) > 1 && resp.StatusCode == http.StatusCreated {
					m.recreated.Add(1)
				}
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stopSupervision ends the supervisors; every member keeps its last
// incarnation running.
func (h *chaosHarness) stopSupervision() {
	h.stopSupervising()
	h.supervised.Wait()
}

// groupProc is a process started in its own process group, so that a
// SIGKILL takes ddi run together with its command, as a crash of a
// container takes all of it.
type groupProc struct {
	cmd   *exec.Cmd
	out   *lockedBuffer
	first chan string
	done  chan struct{}
}

func startGroup(bin string, args ...string) (*groupProc, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &groupProc{cmd: cmd, out: &lockedBuffer{}, first: make(chan string, 1), done: make(chan struct{})}
	cmd.Stderr = p.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 4096)
		var line []byte
		sent := false
		for {
			n, err := stdout.Read(buf)
			p.out.Write(buf[:n])
			if !sent {
				line = append(line, buf[:n]...)
				if i := slices.Index(line, '\n'); i >= 0 {
					p.first <- string(line[:i])
					sent = true
				}
			}
			if err != nil {
				break
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// kill SIGKILLs the process group and waits for it.
func (p *groupProc) kill() error {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("process group did not die within 30s of SIGKILL")
	}
}

// --- endpoints ---------------------------------------------------------------

// flapServer is a real HTTP server on a fixed address that can be stopped
// and started again.
type flapServer struct {
	addr, url, body string
	live            *liveness

	mu  sync.Mutex
	srv *http.Server
}

func (f *flapServer) start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("start endpoint %s: %w", f.addr, err)
	}
	f.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, f.body)
	})}
	go f.srv.Serve(ln)
	f.live.set(f.url, true)
	return nil
}

// stop marks the endpoint down, then closes its listener and connections.
func (f *flapServer) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv == nil {
		return
	}
	f.live.set(f.url, false)
	_ = f.srv.Close()
	f.srv = nil
}

func (f *flapServer) isUp() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.srv != nil
}

// fixedAddr returns a free loopback address whose port lies below the
// kernel's ephemeral range, so that no outgoing connection or :0 listener
// takes it while its owner is down between a kill and a restart.
func fixedAddr(t *testing.T, rng *rand.Rand, taken map[string]bool) string {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &lo)
	}
	for range 200 {
		if lo <= 20000 {
			break
		}
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rng.IntN(lo-20000))
		if taken[addr] {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		taken[addr] = true
		return addr
	}
	return freeAddr(t)
}

// liveness records, per key (an endpoint URL, a process), whether it is up
// and a generation that changes on every transition, so that a request
// can tell whether something stayed up for its whole duration.
type liveness struct {
	mu sync.Mutex
	m  map[string]upState
}

type upState struct {
	up  bool
	gen uint64
}

func (l *liveness) set(key string, up bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.m[key]
	if s.up != up {
		l.m[key] = upState{up: up, gen: s.gen + 1}
	}
}

func (l *liveness) get(key string) upState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[key]
}

func (l *liveness) states(keys []string) []upState {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]upState, len(keys))
	for i, k := range keys {
		out[i] = l.m[k]
	}
	return out
}

// stayedUp reports whether a key seen as a and later as b was up all along.
func stayedUp(a, b upState) bool { return a.up && b.up && a.gen == b.gen }

// wasUp reports whether a key seen as a and later as b was up at some
// moment between.
func wasUp(a, b upState) bool { return a.up || b.up || a.gen != b.gen }

// --- checks at the end ---------------------------------------------------------

// settleRegistrations waits, with the control plane up and every member
// running, until the control plane lists exactly one registration per
// registering process, by its owner, and none else; it counts what is
// missing and what is extra (a duplicate).
func (h *chaosHarness) settleRegistrations(timeout time.Duration) {
	want := map[string]string{} // provider -> owner's function name
	for _, m := range h.members() {
		want[m.provider] = m.name
	}
	h.end.registrationsExpected = len(want)
	c := &client.Client{BaseURL: h.cp.url}
	deadline := time.Now().Add(timeout)
	for {
		list, err := c.ListProviders(context.Background(), "")
		missing, extra := len(want), 0
		if err == nil {
			seen := map[string]int{}
			for _, p := range list.Providers {
				if p.Lease == nil {
					continue
				}
				fn, ok := want[p.Name]
				if !ok || !strings.HasPrefix(p.Owner, "sidecar:default/"+fn+"@") {
					extra++
					continue
				}
				seen[p.Name]++
			}
			missing = 0
			for name := range want {
				switch n := seen[name]; {
				case n == 0:
					missing++
				case n > 1:
					extra += n - 1
				}
			}
		}
		h.end.missing, h.end.duplicated = missing, extra
		if err == nil && missing == 0 && extra == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Errorf("registrations did not settle within %s: %d missing, %d extra (list error %v)", timeout, missing, extra, err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkDeclared checks that every provider added with the CLI or the
// client and acknowledged is listed, at its last acknowledged version or
// at a later one that was sent (a write that committed before its answer
// was lost to a SIGKILL).
func (h *chaosHarness) checkDeclared() {
	list, err := (&client.Client{BaseURL: h.cp.url}).ListProviders(context.Background(), "")
	if err != nil {
		h.t.Errorf("list providers: %v", err)
		return
	}
	stored := map[string]client.Provider{}
	for _, p := range list.Providers {
		stored[p.Name] = p
	}
	for i := range h.cfg.declared {
		h.end.declaredChecked++
		p, ok := stored[fmt.Sprintf("chaos-decl-%d", i)]
		if !ok || len(p.Endpoints) != 2 || p.Version != "1.0.0" || p.Lease != nil {
			h.end.declaredLost++
			h.t.Errorf("declared provider chaos-decl-%d = %+v, %t; want version 1.0.0 with 2 endpoints, no lease", i, p.Provider, ok)
		}
	}
	w := &h.writer
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, acked := range w.acked {
		h.end.declaredChecked++
		p, ok := stored[name]
		seq := -1
		if ok {
			if _, minor, found := strings.Cut(p.Version, "."); found {
				seq, _ = strconv.Atoi(strings.TrimSuffix(minor, ".0"))
			}
		}
		if !ok || seq < acked || seq > w.attempted[name] {
			h.end.declaredLost++
			h.t.Errorf("provider %s: stored %t at version %q, want 1.N.0 with %d <= N <= %d", name, ok, p.Version, acked, w.attempted[name])
		}
	}
}

// leaseGrace is how long past its expiry a lease may still be listed by a
// control plane that has been up at least that long: two sweeps and some
// slack for a busy machine.
const leaseGrace = 2*bolt.DefaultSweepInterval + 3*time.Second

// checkLeasesEnd SIGKILLs every registering process, so none deregisters,
// SIGKILLs and restarts the control plane within the leases, and polls
// until no leased provider is left. A registration leaks when it is still
// listed more than leaseGrace past its expiry by a control plane that has
// been up for leaseGrace, or at all a minute after its ttl.
func (h *chaosHarness) checkLeasesEnd() {
	c := &client.Client{BaseURL: h.cp.url}
	if list, err := c.ListProviders(context.Background(), ""); err == nil {
		for _, p := range list.Providers {
			if p.Lease != nil {
				h.end.leased++
			}
		}
	}
	killed := time.Now()
	for _, m := range h.members() {
		m.stop(h)
	}
	h.cp.kill(h, false)
	h.checkStore("after SIGKILL")
	if err := h.cp.start(h); err != nil {
		h.t.Fatalf("restart the control plane: %v", err)
	}
	up := time.Now()
	deadline := killed.Add(max(greeterTTL, peerTTL) + time.Minute)
	leaked := map[string]bool{}
	defer func() { h.end.leaked = len(leaked) }()
	for {
		now := time.Now()
		list, err := c.ListProviders(context.Background(), "")
		var left []string
		for _, p := range list.Providers {
			if p.Lease == nil {
				continue
			}
			left = append(left, p.Name)
			if overdue := now.Sub(p.Lease.ExpiresAt); now.Sub(up) >= leaseGrace {
				h.end.mostOverdue = max(h.end.mostOverdue, overdue)
				if overdue > leaseGrace {
					leaked[p.Name] = true
				}
			}
		}
		if err == nil && len(left) == 0 {
			h.end.leasesGoneAfter = time.Since(killed)
			return
		}
		if now.After(deadline) {
			for _, name := range left {
				leaked[name] = true
			}
			h.t.Errorf("run-time registrations %v left %s after every registering process was killed (list error %v)", left, time.Since(killed).Round(time.Millisecond), err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkFinalStore SIGKILLs the control plane one last time and checks the
// file it leaves.
func (h *chaosHarness) checkFinalStore() {
	h.cp.kill(h, false)
	h.checkStore("at the end")
}

// report logs the run's table.
func (h *chaosHarness) report(setup, checks, total time.Duration) {
	n := &h.tally
	n.mu.Lock()
	defer n.mu.Unlock()
	n.judgeTimeouts(&h.stalls)
	w := &h.writer
	w.mu.Lock()
	defer w.mu.Unlock()
	var kills, exits, regs, lapses, recreated int64
	for _, m := range h.members() {
		kills += m.kills.Load()
		exits += m.exits.Load()
		regs += m.registrations.Load()
		lapses += m.lapses.Load()
		recreated += m.recreated.Load()
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, v any, target string) { fmt.Fprintf(tw, "%s\t%v\t%s\t\n", name, v, target) }
	fmt.Fprintf(&b, "chaos run: %s of faults, %d functions, %d greeters, %d declared providers x 2 endpoints, seed %d; setup %s, end checks %s, total %s\n",
		h.cfg.duration, h.cfg.functions, h.cfg.greeters, h.cfg.declared, h.cfg.seed, setup.Round(time.Second), checks.Round(time.Second), total.Round(time.Second))
	row("FAULTS", "count", "")
	row("control plane SIGKILLs", h.cp.kills, "")
	row("  with a provider write in flight", h.cp.killsMidWrite, "")
	row("  control plane down in total", h.cp.downtime.Round(100*time.Millisecond), "")
	row("ddi run process groups SIGKILLed", kills, "")
	row("ddi run exits (registration refused)", exits, "")
	row("endpoint stops and restarts", h.faults.flaps.Load(), "")
	row("  restarts refused (port taken)", h.faults.flapRestartFailures.Load(), "")
	row("FIGURES", "count", "target")
	row("resolves", n.resolves, "")
	row("  200", n.resolveOK, "")
	row("  200 while the control plane was down", n.resolveOKWhileCPDown, "")
	row("  failed after the sidecar had the binding", n.resolveFailed, "0")
	row("  before the sidecar's first snapshot", n.resolveBeforeSnapshot, "")
	row("  404 after the registry dropped it", n.resolveUnbound, "")
	row("  404 from a snapshot sent just before a SIGKILL", n.resolveInFlight, "")
	row("  sidecar killed during the request", n.resolveSidecarDown, "")
	row("invokes", n.invokes, "")
	row("  200", n.invokeOK, "")
	row("  eligible (an endpoint stayed up) and 200", n.invokeEligibleOK, "")
	row("  eligible and failed", n.invokeFailed, "0")
	row("  200 from the wrong provider", n.invokeWrong, "0")
	row("timeouts during a stall of the test process", n.excused, "")
	row("  longest stall of the test process", h.stalls.longest.Round(10*time.Millisecond), "")
	row("  failed, no endpoint of the binding up", n.invokeProviderDown, "")
	row("  binding changed during the invoke", n.invokeRebound, "")
	row("  sidecar killed during the request", n.invokeSidecarDown, "")
	row("provider writes acknowledged", w.acks, "")
	row("  of which with ddi provider add", w.viaCLI, "")
	row("  refused or cut (control plane down)", w.fails, "")
	row("declared providers lost", fmt.Sprintf("%d/%d", h.end.declaredLost, h.end.declaredChecked), "0")
	row("registrations through a function's sidecar", regs, "")
	row("leases lapsed, renewal registered again", lapses, "")
	row("leases lapsed while a function restarted", recreated, "")
	row("registrations missing after settling", fmt.Sprintf("%d/%d", h.end.missing, h.end.registrationsExpected), "0")
	row("registrations duplicated or stray", h.end.duplicated, "0")
	row("registrations leaked after their ttl", fmt.Sprintf("%d/%d", h.end.leaked, h.end.leased), "0")
	row("  all gone after the SIGKILLs", h.end.leasesGoneAfter.Round(100*time.Millisecond), fmt.Sprintf("ttl %s/%s", peerTTL, greeterTTL))
	row("  longest listed past its expiry", h.end.mostOverdue.Round(100*time.Millisecond), fmt.Sprintf("<= %s", leaseGrace))
	row("providers in the store at the end", h.end.finalProviders, "")
	row("store opened corrupt", fmt.Sprintf("%d/%d", h.end.storeCorrupt+h.cp.failedStarts, h.end.storeChecks+h.cp.starts), "0")
	tw.Flush()
	if len(n.samples) > 0 {
		fmt.Fprintf(&b, "first failures:\n  %s\n", strings.Join(n.samples, "\n  "))
	}
	h.t.Log("\n" + b.String())

	if n.resolveFailed != 0 {
		h.t.Errorf("%d resolves failed after the sidecar had the binding, want 0", n.resolveFailed)
	}
	if n.invokeFailed != 0 {
		h.t.Errorf("%d invokes failed while an endpoint of their binding stayed up, want 0", n.invokeFailed)
	}
	if n.invokeWrong != 0 {
		h.t.Errorf("%d invokes answered by the wrong provider, want 0", n.invokeWrong)
	}
	if h.end.declaredLost != 0 {
		h.t.Errorf("%d declared providers lost, want 0", h.end.declaredLost)
	}
	if h.end.duplicated != 0 || h.end.missing != 0 {
		h.t.Errorf("registrations after settling: %d missing, %d duplicated or stray, want 0 and 0", h.end.missing, h.end.duplicated)
	}
	if h.end.leaked != 0 {
		h.t.Errorf("%d registrations leaked (listed more than %s past their expiry), want 0", h.end.leaked, leaseGrace)
	}
	if n := h.end.storeCorrupt + h.cp.failedStarts; n != 0 {
		h.t.Errorf("store opened corrupt %d times, want 0", n)
	}
	// The run must have done what it claims.
	if h.cp.kills < 2 || kills == 0 || h.faults.flaps.Load() == 0 || n.resolveOKWhileCPDown == 0 || n.invokeEligibleOK == 0 {
		h.t.Errorf("the run exercised too little: %d control plane kills, %d process kills, %d flaps, %d resolves while it was down, %d eligible invokes",
			h.cp.kills, kills, h.faults.flaps.Load(), n.resolveOKWhileCPDown, n.invokeEligibleOK)
	}
}
