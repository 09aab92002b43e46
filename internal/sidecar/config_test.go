package sidecar

import (
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/testpki"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{ControlPlane: "http://127.0.0.1:7470", Consumer: registry.Consumer{Name: "fn"},
			Dependencies: []registry.Dependency{mustDep("db=postgresql@^15")}}
	}
	tests := []struct {
		name      string
		mutate    func(c *Config)
		wantField string // "" for valid
	}{
		{name: "minimal", mutate: func(c *Config) {}},
		{name: "ipv6 loopback", mutate: func(c *Config) { c.Listen = "[::1]:7471" }},
		{name: "localhost", mutate: func(c *Config) { c.Listen = "localhost:0" }},
		{name: "no dependencies", mutate: func(c *Config) { c.Dependencies = nil }},
		{name: "listen without port", mutate: func(c *Config) { c.Listen = "127.0.0.1" }, wantField: "Listen"},
		{name: "listen on all interfaces", mutate: func(c *Config) { c.Listen = "0.0.0.0:7471" }, wantField: "Listen"},
		{name: "listen on a Knative port", mutate: func(c *Config) { c.Listen = "127.0.0.1:8012" }, wantField: "Listen"},
		{name: "listen on an Istio port", mutate: func(c *Config) { c.Listen = "127.0.0.1:15001" }, wantField: "Listen"},
		{name: "listen on the Dapr port", mutate: func(c *Config) { c.Listen = "127.0.0.1:3500" }, wantField: "Listen"},
		{name: "no control plane", mutate: func(c *Config) { c.ControlPlane = "" }, wantField: "ControlPlane"},
		{name: "control plane not a URL", mutate: func(c *Config) { c.ControlPlane = "127.0.0.1:7470" }, wantField: "ControlPlane"},
		{name: "control plane with credentials", mutate: func(c *Config) { c.ControlPlane = "http://u:p@cp:7470" }, wantField: "ControlPlane"},
		{name: "no consumer name", mutate: func(c *Config) { c.Consumer.Name = "" }, wantField: "Consumer.Name"},
		{name: "bad consumer namespace", mutate: func(c *Config) { c.Consumer.Namespace = "Team" }, wantField: "Consumer.Namespace"},
		{name: "bad alias", mutate: func(c *Config) { c.Dependencies = append(c.Dependencies, registry.Dependency{Alias: "DB"}) }, wantField: "Dependencies[1].Alias"},
		{name: "duplicate alias", mutate: func(c *Config) { c.Dependencies = append(c.Dependencies, mustDep("db=pg")) }, wantField: "Dependencies[1].Alias"},
		{name: "empty selector", mutate: func(c *Config) { c.Dependencies = []registry.Dependency{{Alias: "db"}} }, wantField: "Dependencies[0].Selector"},
		{name: "negative invoke timeout", mutate: func(c *Config) { c.InvokeTimeout = -time.Second }, wantField: "InvokeTimeout"},
		{name: "huge invoke timeout", mutate: func(c *Config) { c.InvokeTimeout = time.Hour }, wantField: "InvokeTimeout"},
		{name: "ttl below 1s", mutate: func(c *Config) { c.RegistrationTTL = time.Millisecond }, wantField: "RegistrationTTL"},
		{name: "ttl above 24h", mutate: func(c *Config) { c.RegistrationTTL = 25 * time.Hour }, wantField: "RegistrationTTL"},
		{name: "reconnect max below min", mutate: func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Second, time.Millisecond }, wantField: "ReconnectMax"},
		{name: "CA in memory", mutate: func(c *Config) { c.CA = testpki.CAPEM(t) }},
		{name: "CA that is not PEM", mutate: func(c *Config) { c.CA = []byte("not a certificate") }, wantField: "CA"},
		{name: "sidecar id too long", mutate: func(c *Config) { c.SidecarID = string(make([]byte, 129)) }, wantField: "SidecarID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *registry.FieldError", err)
			}
			if fe.Field != tt.wantField {
				t.Errorf("Validate() field = %q, want %q (%v)", fe.Field, tt.wantField, err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Listen != "127.0.0.1:7471" || c.InvokeTimeout != 30*time.Second || c.RegistrationTTL != 30*time.Second ||
		c.Consumer.Namespace != "default" || c.SidecarID == "" {
		t.Errorf("withDefaults() = %+v, want listen 127.0.0.1:7471, timeouts 30s, namespace default, a sidecar id", c)
	}
	if d := (Config{}).withDefaults().SidecarID; d == c.SidecarID {
		t.Errorf("two default sidecar ids are both %q, want them unique", d)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New(Config{}, nil)
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Field != "ControlPlane" {
		t.Errorf("New(Config{}) = %v, want a field error on ControlPlane", err)
	}
}

func TestControlPlaneCA(t *testing.T) {
	f := newTLSFakeCP(t)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	other := testpki.CAPEM(t)
	tests := []struct {
		name    string
		ca      []byte
		caFile  string
		trusted bool
	}{
		{name: "CA in memory", ca: caPEM, trusted: true},
		{name: "CA file", caFile: caFile, trusted: true},
		{name: "both", ca: other, caFile: caFile, trusted: true},
		{name: "system roots only"},
		{name: "another CA", ca: other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(f)
			cfg.CA, cfg.CAFile = tt.ca, tt.caFile
			ts := startSidecar(t, cfg)
			defer ts.stop()
			if tt.trusted {
				f.nextHello(t)
				return
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(ts.logs.String(), "x509: certificate signed by unknown authority") {
				if time.Now().After(deadline) {
					t.Fatalf("no certificate verification failure logged within 5s; logs:\n%s", ts.logs.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			select {
			case h := <-f.hellos:
				t.Errorf("the control plane got hello %+v from a sidecar that should not trust it", h)
			default:
			}
		})
	}
}
