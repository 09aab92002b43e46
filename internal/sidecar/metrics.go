package sidecar

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Invoke results, the "result" label of ddi_sidecar_invoke_total.
const (
	resultOK          = "ok"          // a response below 500 was relayed
	resultServerError = "5xx"         // the provider answered 5xx
	resultError       = "error"       // every attempt failed to connect (502)
	resultUnavailable = "unavailable" // no endpoint to try (503)
	resultTimeout     = "timeout"     // the invoke timeout expired (504)
	resultCanceled    = "canceled"    // the caller went away
)

var invokeResults = [...]string{resultOK, resultServerError, resultError, resultUnavailable, resultTimeout, resultCanceled}

// invokeCounterSet holds one dependency's counters, indexed like
// invokeResults.
type invokeCounterSet [len(invokeResults)]prometheus.Counter

// metrics are the sidecar's Prometheus metrics, in their own registry.
// Labels never carry secret material: routes are patterns, dependencies
// are declared aliases.
type metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	invokes         *prometheus.CounterVec
	snapshotVersion prometheus.Gauge
	connected       prometheus.Gauge
	snapshots       prometheus.Counter
	reconnects      prometheus.Counter
	fileErrors      prometheus.Counter
	registrations   prometheus.Gauge
	renewFailures   prometheus.Counter
	ejections       prometheus.Counter

	mu          sync.Mutex
	invokeByDep map[string]*invokeCounterSet
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ddi_sidecar_http_requests_total", Help: "HTTP API requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ddi_sidecar_http_request_duration_seconds", Help: "HTTP API request latency by route pattern (for invoke: including the provider).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		invokes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ddi_sidecar_invoke_total", Help: "Proxied invocations by dependency and result (ok, 5xx, error, unavailable, timeout, canceled).",
		}, []string{"dependency", "result"}),
		snapshotVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ddi_sidecar_snapshot_version", Help: "Version of the snapshot being served (0 before the first).",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ddi_sidecar_control_plane_connected", Help: "1 while the snapshot stream to the control plane is up, else 0.",
		}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ddi_sidecar_snapshots_applied_total", Help: "Snapshots received and applied.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ddi_sidecar_stream_reconnects_total", Help: "Times the snapshot stream ended and was retried.",
		}),
		fileErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ddi_sidecar_binding_file_errors_total", Help: "Failures to project a binding as files.",
		}),
		registrations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ddi_sidecar_registrations", Help: "Run-time providers registered through this sidecar.",
		}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ddi_sidecar_lease_renew_failures_total", Help: "Failed lease renewals of run-time providers.",
		}),
		ejections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ddi_sidecar_invoke_ejections_total", Help: "Endpoints ejected after consecutive failures.",
		}),
		invokeByDep: map[string]*invokeCounterSet{},
	}
	m.reg.MustRegister(m.requests, m.latency, m.invokes, m.snapshotVersion, m.connected, m.snapshots, m.reconnects,
		m.fileErrors, m.registrations, m.renewFailures, m.ejections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// invokeCounters returns the pre-labelled invoke counters of dep, in the
// order of invokeResults.
func (m *metrics) invokeCounters(dep string) *invokeCounterSet {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.invokeByDep[dep]
	if !ok {
		c = new(invokeCounterSet)
		for i, r := range invokeResults {
			c[i] = m.invokes.WithLabelValues(dep, r)
		}
		m.invokeByDep[dep] = c
	}
	return c
}

func resultIndex(result string) int {
	for i, r := range invokeResults {
		if r == result {
			return i
		}
	}
	return 0
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// commonCodes get pre-labelled counters; others are looked up per request.
var commonCodes = [...]int{200, 201, 204, 400, 404, 405, 409, 413, 502, 503, 504}

// route instruments one route: it counts requests by status and observes
// latency with label values resolved once, so the hot path does no label
// lookups.
type route struct {
	m       *metrics
	name    string
	latency prometheus.Observer
	codes   [len(commonCodes)]prometheus.Counter
	next    http.Handler
}

func (m *metrics) instrument(name string, next http.Handler) *route {
	r := &route{m: m, name: name, latency: m.latency.WithLabelValues(name), next: next}
	for i, c := range commonCodes {
		r.codes[i] = m.requests.WithLabelValues(name, strconv.Itoa(c))
	}
	return r
}

var recorderPool = sync.Pool{New: func() any { return new(statusRecorder) }}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := recorderPool.Get().(*statusRecorder)
	rec.ResponseWriter, rec.status = w, 0
	defer func() {
		status := rec.status
		rec.ResponseWriter = nil
		recorderPool.Put(rec)
		rt.observe(status, start)
	}()
	rt.next.ServeHTTP(rec, r)
}

// observe counts one request of the route that answered status (0 counts
// as 200) and began at start.
func (rt *route) observe(status int, start time.Time) {
	if status == 0 {
		status = http.StatusOK
	}
	rt.latency.Observe(time.Since(start).Seconds())
	for i, c := range commonCodes {
		if c == status {
			rt.codes[i].Inc()
			return
		}
	}
	rt.m.requests.WithLabelValues(rt.name, strconv.Itoa(status)).Inc()
}

// statusRecorder remembers the status a handler wrote. Unwrap lets
// http.ResponseController reach the connection (flushing, deadlines).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush forwards to the underlying writer; ReverseProxy and SSE need it.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
