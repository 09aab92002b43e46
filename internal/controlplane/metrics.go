package controlplane

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

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
