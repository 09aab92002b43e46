package sidecar

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/sdk/wellknown"
)

// Defaults of Config fields left zero.
const (
	DefaultListen           = wellknown.SidecarListen
	DefaultInvokeTimeout    = 30 * time.Second
	DefaultRegistrationTTL  = 30 * time.Second
	DefaultReconnectMin     = 250 * time.Millisecond
	DefaultReconnectMax     = 30 * time.Second
	DefaultHeartbeatTimeout = 45 * time.Second
	DefaultShutdownTimeout  = 5 * time.Second
	DefaultOutliveQuiet     = time.Second
	DefaultOutliveMax       = 10 * time.Minute
	DefaultPodInfoInterval  = 2 * time.Second
)

// MaxInvokeTimeout bounds InvokeTimeout and the Ddi-Timeout header.
const MaxInvokeTimeout = 10 * time.Minute

// Config configures a Sidecar. Zero fields take the defaults above; New
// applies them and calls Validate.
type Config struct {
	// Listen is the loopback host:port of the HTTP API.
	Listen string
	// ControlPlane is the control plane's base URL, such as
	// http://127.0.0.1:7470. Required.
	ControlPlane string
	// TokenFile, when set, holds the bearer token sent to the control
	// plane; it is read again for every request (Kubernetes rotates it).
	TokenFile string
	// CAFile, when set, holds PEM certificates trusted for an https
	// control plane instead of the system pool.
	CAFile string
	// CA, when set, is PEM certificates trusted for an https control plane
	// instead of the system pool, given in memory (the injector passes
	// them in $DDI_CONTROL_PLANE_CA). With CAFile too, both are trusted.
	CA []byte
	// SidecarID is unique per sidecar process. Default: hostname plus a
	// random suffix.
	SidecarID string
	// Consumer is the function this sidecar serves. Name is required;
	// Namespace defaults to "default".
	Consumer registry.Consumer
	// Dependencies are the consumer's declared slots.
	Dependencies []registry.Dependency
	// BindingRoot is $SERVICE_BINDING_ROOT: where bindings are projected
	// as files. Empty disables projection.
	BindingRoot string
	// InvokeTimeout bounds one proxied invocation unless the request's
	// Ddi-Timeout header says otherwise.
	InvokeTimeout time.Duration
	// RegistrationTTL is the lease of run-time registrations that do not
	// name a ttl.
	RegistrationTTL time.Duration
	// ReconnectMin and ReconnectMax bound the stream's reconnect backoff
	// (exponential, with full jitter).
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// HeartbeatTimeout is how long a silent stream is trusted before it is
	// dropped and reconnected (the control plane sends a heartbeat every
	// 15s).
	HeartbeatTimeout time.Duration
	// ShutdownTimeout bounds the clean shutdown: draining requests and
	// deregistering run-time providers.
	ShutdownTimeout time.Duration
	// PodInfoDir, when set, is the pod's downward-API folder (files
	// labels and annotations; $DDI_PODINFO_DIR on Kubernetes). When
	// either file changes the sidecar reconnects, so the control plane
	// identifies the pod again: a Fission pool pod that the pool manager
	// relabels as a function gets that function's bindings.
	PodInfoDir string
	// PodInfoInterval is how often PodInfoDir is read.
	PodInfoInterval time.Duration
	// MetricsListen, when set, is a second listener (host:port; ":9471"
	// is every address of the pod) that serves GET /metrics and nothing
	// else, so that a cluster's Prometheus can scrape the sidecar while
	// its API, which hands out secrets, stays on loopback.
	MetricsListen string
	// OutliveApp makes a shutdown wait for the function first: until none
	// of AppPorts accepts a connection on loopback and the API has been
	// idle (no request in flight, none ended) for OutliveQuiet, at most
	// OutliveMax; the sidecar serves as usual meanwhile. The injector sets
	// it for plain-container sidecars, which the kubelet stops together
	// with the function (docs/injection.md, "Stopping").
	OutliveApp bool
	// AppPorts are the function's TCP ports (from its containers' ports).
	AppPorts []int
	// OutliveQuiet and OutliveMax: see OutliveApp.
	OutliveQuiet time.Duration
	OutliveMax   time.Duration
}

// reservedPorts are ports Knative, Dapr or Istio claim inside a pod.
func reservedPort(p int) bool {
	switch p {
	case 3500, 8008, 8012, 8013, 8022, 9090, 9091, 50001:
		return true
	}
	return p >= 15000 && p <= 15090
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Consumer.Namespace == "" {
		c.Consumer.Namespace = registry.DefaultNamespace
	}
	if c.SidecarID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "sidecar"
		}
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.SidecarID = host + "-" + hex.EncodeToString(b[:])
	}
	if c.InvokeTimeout == 0 {
		c.InvokeTimeout = DefaultInvokeTimeout
	}
	if c.RegistrationTTL == 0 {
		c.RegistrationTTL = DefaultRegistrationTTL
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.PodInfoInterval == 0 {
		c.PodInfoInterval = DefaultPodInfoInterval
	}
	if c.OutliveQuiet == 0 {
		c.OutliveQuiet = DefaultOutliveQuiet
	}
	if c.OutliveMax == 0 {
		c.OutliveMax = DefaultOutliveMax
	}
	return c
}

// Validate checks c after applying defaults and returns the first problem
// as a *registry.FieldError whose Field is the Config field's name
// ("ControlPlane", "Dependencies[1].Alias", ...).
func (c Config) Validate() error {
	c = c.withDefaults()
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return &registry.FieldError{Field: "Listen", Value: c.Listen, Reason: "is not host:port, for example 127.0.0.1:7471"}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return &registry.FieldError{Field: "Listen", Value: c.Listen, Reason: "is not a loopback address: the sidecar API hands out secrets, so it listens on 127.0.0.1, [::1] or localhost only"}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return &registry.FieldError{Field: "Listen", Value: c.Listen, Reason: "has no valid port"}
	} else if reservedPort(n) {
		return &registry.FieldError{Field: "Listen", Value: c.Listen, Reason: "uses a port reserved by Knative, Dapr or Istio (3500, 8008, 8012, 8013, 8022, 9090, 9091, 15000-15090, 50001); the default is 7471"}
	}
	if c.MetricsListen != "" {
		_, mport, err := net.SplitHostPort(c.MetricsListen)
		n, perr := strconv.Atoi(mport)
		switch {
		case err != nil || perr != nil || n < 1 || n > 65535:
			return &registry.FieldError{Field: "MetricsListen", Value: c.MetricsListen, Reason: "is not host:port or :port, for example :9471"}
		case reservedPort(n):
			return &registry.FieldError{Field: "MetricsListen", Value: c.MetricsListen, Reason: "uses a port reserved by Knative, Dapr or Istio; the injector's default is 9471"}
		case mport == port:
			return &registry.FieldError{Field: "MetricsListen", Value: c.MetricsListen, Reason: "uses the API's port: choose another, such as 9471"}
		}
	}
	for i, p := range c.AppPorts {
		if p < 1 || p > 65535 {
			return &registry.FieldError{Field: fmt.Sprintf("AppPorts[%d]", i), Value: strconv.Itoa(p), Reason: "is not a TCP port (1-65535)"}
		}
	}
	if c.ControlPlane == "" {
		return &registry.FieldError{Field: "ControlPlane", Reason: "is required: the control plane URL, for example http://127.0.0.1:7470"}
	}
	if u, err := url.Parse(c.ControlPlane); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return &registry.FieldError{Field: "ControlPlane", Value: c.ControlPlane, Reason: "is not an http(s) URL without credentials, such as http://127.0.0.1:7470"}
	}
	if len(c.CA) > 0 && !x509.NewCertPool().AppendCertsFromPEM(c.CA) {
		return &registry.FieldError{Field: "CA", Reason: "holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks)"}
	}
	if len(c.SidecarID) > 128 {
		return &registry.FieldError{Field: "SidecarID", Reason: "is longer than 128 characters"}
	}
	if err := registry.ValidateName("Consumer.Name", c.Consumer.Name); err != nil {
		return err
	}
	if err := registry.ValidateName("Consumer.Namespace", c.Consumer.Namespace); err != nil {
		return err
	}
	seen := make(map[string]bool, len(c.Dependencies))
	for i, d := range c.Dependencies {
		field := fmt.Sprintf("Dependencies[%d]", i)
		if err := registry.ValidateName(field+".Alias", d.Alias); err != nil {
			return err
		}
		if seen[d.Alias] {
			return &registry.FieldError{Field: field + ".Alias", Value: d.Alias, Reason: "is declared twice"}
		}
		seen[d.Alias] = true
		if d.Selector.Provider == "" && d.Selector.Type == "" {
			return &registry.FieldError{Field: field + ".Selector", Reason: "is empty: name a provider or a type and range"}
		}
	}
	for _, d := range []struct {
		field    string
		v        time.Duration
		min, max time.Duration
	}{
		{"InvokeTimeout", c.InvokeTimeout, time.Millisecond, MaxInvokeTimeout},
		{"RegistrationTTL", c.RegistrationTTL, registry.MinLeaseTTL, registry.MaxLeaseTTL},
		{"ReconnectMin", c.ReconnectMin, time.Millisecond, time.Hour},
		{"ReconnectMax", c.ReconnectMax, c.ReconnectMin, time.Hour},
		{"HeartbeatTimeout", c.HeartbeatTimeout, 10 * time.Millisecond, time.Hour},
		{"ShutdownTimeout", c.ShutdownTimeout, time.Millisecond, 10 * time.Minute},
		{"PodInfoInterval", c.PodInfoInterval, time.Millisecond, time.Hour},
		{"OutliveQuiet", c.OutliveQuiet, time.Millisecond, time.Minute},
		{"OutliveMax", c.OutliveMax, time.Millisecond, time.Hour},
	} {
		if d.v < d.min || d.v > d.max {
			return &registry.FieldError{Field: d.field, Value: d.v.String(), Reason: fmt.Sprintf("is out of range: use a duration between %s and %s", d.min, d.max)}
		}
	}
	return nil
}

// dependencyStrings formats the dependencies for the stream's hello.
func (c *Config) dependencyStrings() []string {
	out := make([]string, len(c.Dependencies))
	for i, d := range c.Dependencies {
		out[i] = d.Alias + "=" + d.SelectorString()
	}
	return out
}
