package controlplane

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// Gatherer returns the control plane's own metrics (ddi_*), without the Go
// and process metrics its registry also holds, for a process that serves
// them beside other registries (the controller's metrics port).
func (s *Server) Gatherer() prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		all, err := s.reg.Gather()
		out := all[:0]
		for _, mf := range all {
			if strings.HasPrefix(mf.GetName(), "ddi_") {
				out = append(out, mf)
			}
		}
		return out, err
	})
}

type metrics struct {
	streams       prometheus.Gauge
	revision      prometheus.Gauge
	providers     prometheus.Gauge
	storeEvents   prometheus.Counter
	snapshotsSent *prometheus.CounterVec
	nacks         prometheus.Counter
	ackLatency    prometheus.Histogram
	secretChanges prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		streams:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "ddi_controlplane_streams", Help: "Connected sidecar streams."}),
		revision:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "ddi_controlplane_store_revision", Help: "Store revision of the provider index."}),
		providers:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "ddi_controlplane_providers", Help: "Providers in the index."}),
		storeEvents: prometheus.NewCounter(prometheus.CounterOpts{Name: "ddi_controlplane_store_events_total", Help: "Store events applied to the index."}),
		snapshotsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ddi_controlplane_messages_sent_total", Help: "Stream messages sent, by type."},
			[]string{"type"}),
		nacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "ddi_controlplane_nacks_total", Help: "Snapshots a sidecar rejected."}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ddi_controlplane_ack_latency_seconds",
			Help: "Time from sending a snapshot to its acknowledgement.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		secretChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "ddi_controlplane_secret_changes_total",
			Help: "Changes of referenced secret material found by polling and pushed."}),
	}
	reg.MustRegister(m.streams, m.revision, m.providers, m.storeEvents, m.snapshotsSent, m.nacks, m.ackLatency, m.secretChanges,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
