package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/bolt"
)

// Sizes of the fan-out benchmark: the targets in bench/RESULTS.md.
const (
	fanoutStreams   = 1000
	fanoutProviders = 10000
)

// streamClient is a minimal simulated sidecar: one stream, acks, and a
// record of when each snapshot version arrived.
type streamClient struct {
	id  string
	got chan protocol.Message
}

func openStream(ctx context.Context, hc *http.Client, base, id string, deps []string) (*streamClient, error) {
	hello, _ := json.Marshal(protocol.Hello{SidecarID: id, Consumer: registry.Consumer{Namespace: "default", Name: id}, Dependencies: deps})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+protocol.StreamPath, bytes.NewReader(hello))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("stream %s: %s", id, resp.Status)
	}
	c := &streamClient{id: id, got: make(chan protocol.Message, 16)}
	go func() {
		defer resp.Body.Close()
		r := bufio.NewReaderSize(resp.Body, 4096)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var m protocol.Message
			if json.Unmarshal(line, &m) != nil || m.Type != protocol.TypeSnapshot {
				continue
			}
			select {
			case c.got <- m:
			default:
			}
			// Ack off the read path, as the sidecar's reader must never
			// stall behind its own acknowledgement.
			go func() {
				ack, _ := json.Marshal(protocol.Ack{SidecarID: id, Version: m.Version, Hash: m.Hash})
				areq, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+protocol.AckPath, bytes.NewReader(ack))
				areq.Header.Set("Content-Type", "application/json")
				if aresp, err := hc.Do(areq); err == nil {
					aresp.Body.Close()
				}
			}()
		}
	}()
	return c, nil
}

func heapMiB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

// BenchmarkWebhookFanout measures the time from a provider change in the
// store until each of 1,000 connected sidecar streams has received the new
// snapshot, with 10,000 providers registered, and the process heap. Every
// stream depends on the changed provider. One op is one change.
func BenchmarkWebhookFanout(b *testing.B) {
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, _ = os.MkdirTemp("/dev/shm", "ddi-bench-")
		defer os.RemoveAll(dir)
	}
	store, err := bolt.Open(dir+"/registry.db", bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	heap0 := heapMiB()
	for i := range fanoutProviders {
		p := registry.Provider{Namespace: "default", Name: "p" + strconv.Itoa(i), Type: []string{"http", "postgresql", "redis", "nats"}[i%4],
			Version: fmt.Sprintf("1.%d.0", i%50), Labels: map[string]string{"tier": []string{"gold", "silver"}[i%2]},
			Endpoints: []registry.Endpoint{{URL: fmt.Sprintf("http://10.%d.%d.%d:8080", i/65536, i/256%256, i%256), Ready: true}}}
		if _, err := store.Create(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	hot := registry.Provider{Namespace: "default", Name: "hot", Type: "http", Version: "1.0.0",
		Endpoints: []registry.Endpoint{{URL: "http://10.255.0.1:8080", Ready: true}}}
	hot, err = store.Create(ctx, hot)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := controlplane.New(controlplane.Options{Store: store, Heartbeat: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Run(ctx) }()
	<-srv.Ready()
	heapProviders := heapMiB()

	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.ReadHeaderTimeout = 10 * time.Second
	ts.Start()
	defer ts.Close()
	hc := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}

	clients := make([]*streamClient, fanoutStreams)
	var wg sync.WaitGroup
	errs := make(chan error, fanoutStreams)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each sidecar has the hot provider and two selector deps.
			c, err := openStream(ctx, hc, ts.URL, "sc-"+strconv.Itoa(i), []string{"hot=hot", "db=postgresql@^1,tier=gold", "cache=redis@>=1.10"})
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
		}()
		if i%100 == 99 {
			wg.Wait()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	for _, c := range clients {
		select {
		case <-c.got:
		case <-time.After(60 * time.Second):
			b.Fatalf("stream %s got no first snapshot", c.id)
		}
	}
	heapStreams := heapMiB()

	var all []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		hot.Endpoints = []registry.Endpoint{{URL: fmt.Sprintf("http://10.254.%d.%d:8080", i/256%256, i%256+1), Ready: true}}
		hot.Revision = 0
		start := time.Now()
		if hot, err = store.Update(ctx, hot); err != nil {
			b.Fatal(err)
		}
		want := hot.Endpoints[0].URL
		lat := make([]time.Duration, len(clients))
		var cw sync.WaitGroup
		for j, c := range clients {
			cw.Add(1)
			go func() {
				defer cw.Done()
				for {
					select {
					case m := <-c.got:
						for _, bd := range m.Bindings {
							if bd.Name == "hot" && len(bd.Endpoints) == 1 && bd.Endpoints[0].URL == want {
								lat[j] = time.Since(start)
								return
							}
						}
					case <-time.After(30 * time.Second):
						lat[j] = 30 * time.Second
						return
					}
				}
			}()
		}
		cw.Wait()
		all = append(all, lat...)
	}
	b.StopTimer()
	timeouts := 0
	for _, d := range all {
		if d >= 30*time.Second {
			timeouts++
		}
	}
	if timeouts > 0 {
		b.Errorf("%d of %d deliveries did not arrive within 30s", timeouts, len(all))
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(heapProviders-heap0, "heap-10k-providers-MiB")
	b.ReportMetric(heapStreams-heap0, "heap-10k-providers+1k-streams-MiB")
	cancel()
}
