package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"ddi.dev/ddi/internal/testpki"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v, want nil", err)
	}
	if !strings.HasPrefix(c.ControlPlaneURL, "https://") || c.ControlPlaneCA != "" {
		t.Errorf("DefaultConfig() control plane = %q with CA %q; want an https URL and no CA (the webhook adds the current one)", c.ControlPlaneURL, c.ControlPlaneCA)
	}
}

func TestConfigValidate(t *testing.T) {
	caPEM := string(testpki.CAPEM(t))
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // substring; "" means valid
	}{
		{name: "https control plane on its own port", change: func(c *Config) { c.ControlPlaneURL = "https://ddi.example:7470" }},
		{name: "port 443 without the Istio exclusion", change: func(c *Config) {
			c.ControlPlaneURL = "https://ddi.example"
			c.IstioExcludeControlPlane = false
		}},
		{name: "plain http control plane", change: func(c *Config) { c.ControlPlaneURL = "http://ddi-controller.ddi-system.svc:7470" }},
		{name: "control plane CA", change: func(c *Config) { c.ControlPlaneCA = caPEM }},
		{name: "control plane CA that is not PEM", change: func(c *Config) { c.ControlPlaneCA = "not a certificate" }, wantErr: "control plane CA: no PEM certificate"},
		{name: "empty image", change: func(c *Config) { c.Image = "" }, wantErr: "image: empty"},
		{name: "image with a space", change: func(c *Config) { c.Image = "ddi :v1" }, wantErr: "image: image reference"},
		{name: "port zero", change: func(c *Config) { c.Port = 0 }, wantErr: "port: 0 is not a port number"},
		{name: "Knative's queue port", change: func(c *Config) { c.Port = 8012 }, wantErr: "reserved by Knative"},
		{name: "Knative's TLS queue port", change: func(c *Config) { c.Port = 8112 }, wantErr: "reserved by Knative"},
		{name: "Dapr's port", change: func(c *Config) { c.Port = 3500 }, wantErr: "reserved by Dapr"},
		{name: "Istio's range", change: func(c *Config) { c.Port = 15021 }, wantErr: "reserved by Istio"},
		{name: "control plane without scheme", change: func(c *Config) { c.ControlPlaneURL = "ddi-controller:7470" }, wantErr: "control plane URL"},
		{name: "control plane with credentials", change: func(c *Config) { c.ControlPlaneURL = "http://u:p@ddi:7470" }, wantErr: "credentials"},
		{name: "control plane on 443 with the Istio exclusion", change: func(c *Config) { c.ControlPlaneURL = "https://ddi.example" }, wantErr: "port 443 carries application traffic"},
		{name: "request above limit", change: func(c *Config) {
			c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse("128Mi")
		}, wantErr: "memory request 128Mi is above its limit 64Mi"},
		{name: "GPU", change: func(c *Config) {
			c.Resources.Limits["nvidia.com/gpu"] = resource.MustParse("1")
		}, wantErr: "only cpu and memory"},
		{name: "log level", change: func(c *Config) { c.LogLevel = "verbose" }, wantErr: `log level: "verbose" is not one of debug, info, warn, error`},
		{name: "relative binding root", change: func(c *Config) { c.BindingRoot = "bindings" }, wantErr: "binding root"},
		{name: "root binding root", change: func(c *Config) { c.BindingRoot = "/" }, wantErr: "binding root"},
		{name: "unclean binding root", change: func(c *Config) { c.BindingRoot = "/bindings/" }, wantErr: "binding root"},
		{name: "no audience", change: func(c *Config) { c.TokenAudience = "" }, wantErr: "token audience"},
		{name: "no version", change: func(c *Config) { c.Version = "" }, wantErr: "version is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.Image, c.Port, c.LogLevel = "", 9090, "loud"
	err := c.Validate()
	for _, want := range []string{"image:", "port:", "log level:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
