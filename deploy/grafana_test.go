package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/bolt"
)

// TestGrafanaDashboardMetrics checks deploy/grafana/ddi.json against the
// metrics the control plane really exports: every ddi_ metric a panel
// queries exists (a histogram's _bucket, _sum and _count included), every
// panel queries one, and every ddi_controlplane_ metric is on a panel.
func TestGrafanaDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("grafana", "ddi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/ddi.json: %v", err)
	}
	exported := exportedMetrics(t)
	metric := regexp.MustCompile(`\bddi_[a-z0-9_]+`)
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		n := 0
		for _, tg := range p.Targets {
			for _, name := range metric.FindAllString(tg.Expr, -1) {
				n++
				base := name
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suf); ok && exported[b] == dto.MetricType_HISTOGRAM {
						base = b
					}
				}
				if _, ok := exported[base]; !ok || base != name && exported[base] != dto.MetricType_HISTOGRAM {
					t.Errorf("panel %q queries %s, which the control plane does not export", p.Title, name)
				}
				queried[base] = true
			}
		}
		if n == 0 {
			t.Errorf("panel %q queries no ddi_ metric", p.Title)
		}
	}
	for name := range exported {
		if !queried[name] {
			t.Errorf("metric %s is exported but on no panel of deploy/grafana/ddi.json", name)
		}
	}
	if len(queried) == 0 {
		t.Fatal("the dashboard queries nothing")
	}
}

// exportedMetrics runs a control plane with one sidecar stream (so that
// labelled metrics have a series) and returns the type of every metric
// its metrics port serves, by name.
func exportedMetrics(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "registry.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := controlplane.New(controlplane.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-srv.Ready()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	hello, _ := json.Marshal(protocol.Hello{SidecarID: "sc-1", Consumer: registry.Consumer{Name: "fn"}})
	sctx, scancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, "POST", hs.URL+protocol.StreamPath, bytes.NewReader(hello))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open a stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	if !bufio.NewScanner(resp.Body).Scan() {
		t.Fatal("no first stream message")
	}
	// The message's count is added once it is written: wait for it.
	out := map[string]dto.MetricType{}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mfs, err := srv.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			out[mf.GetName()] = mf.GetType()
		}
		if _, ok := out["ddi_controlplane_messages_sent_total"]; ok || time.Now().After(deadline) {
			break
		}
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	slices.Sort(names)
	t.Logf("exported: %s", strings.Join(names, ", "))
	return out
}
