package inject

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"ddi.dev/ddi/sdk/wellknown"
)

// Defaults of Config, documented in docs/injection.md.
const (
	DefaultImage           = "ghcr.io/ddi-dev/ddi-sidecar:v0.1.0"
	DefaultPort            = wellknown.SidecarPort
	DefaultMetricsPort     = 9471
	DefaultControlPlaneURL = "https://ddi-controller.ddi-system.svc:7470"
	DefaultLogLevel        = "info"
	DefaultBindingRoot     = "/bindings"
	DefaultTokenAudience   = "ddi"
	DefaultVersion         = "v0.1.0"
)

// Config is what the injector needs to know about the installation. Pods
// can override some of it with annotations (see docs/injection.md).
type Config struct {
	// Image is the sidecar image. It must have the ddi binary on its PATH.
	Image string
	// Port is the loopback port the sidecar listens on.
	Port int32
	// MetricsPort is where the sidecar serves GET /metrics, and nothing
	// else, on the pod's IP, so that a cluster's Prometheus can scrape it
	// (the prometheus.io annotations say so unless the pod sets its own).
	// 0 turns it off.
	MetricsPort int32
	// ControlPlaneURL is where the sidecar streams its snapshots from.
	ControlPlaneURL string
	// ControlPlaneCA is the PEM bundle of the CAs the sidecar trusts for
	// an https ControlPlaneURL, set in its environment as
	// DDI_CONTROL_PLANE_CA. Empty sets nothing: the sidecar then trusts
	// its image's system roots. The webhook fills it on every admission
	// with the controller's current CA.
	ControlPlaneCA string
	// Resources are the sidecar's requests and limits.
	Resources corev1.ResourceRequirements
	// LogLevel is the sidecar's log level: debug, info, warn or error.
	LogLevel string
	// BindingRoot is where binding files appear in every container.
	BindingRoot string
	// NativeSidecars says the cluster runs native sidecars (Kubernetes
	// 1.29 or later): the sidecar then becomes an init container with
	// restartPolicy Always that starts before the function.
	NativeSidecars bool
	// TokenAudience is the audience of the projected token; the control
	// plane's TokenReview must ask for the same one.
	TokenAudience string
	// IstioExcludeControlPlane adds the control plane's port to Istio's
	// excludeOutboundPorts annotation so the sidecar reaches the control
	// plane whatever the start order of the two sidecars.
	IstioExcludeControlPlane bool
	// Version is the ddi version recorded in the ddi.dev/injected-version
	// annotation.
	Version string
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Image:           DefaultImage,
		Port:            DefaultPort,
		MetricsPort:     DefaultMetricsPort,
		ControlPlaneURL: DefaultControlPlaneURL,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("16Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
		},
		LogLevel:                 DefaultLogLevel,
		BindingRoot:              DefaultBindingRoot,
		NativeSidecars:           true,
		TokenAudience:            DefaultTokenAudience,
		IstioExcludeControlPlane: true,
		Version:                  DefaultVersion,
	}
}

// Validate reports every problem of c, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if err := validateImage(c.Image); err != nil {
		errs = append(errs, fmt.Errorf("image: %w", err))
	}
	if err := validatePort(c.Port); err != nil {
		errs = append(errs, fmt.Errorf("port: %w", err))
	}
	if c.MetricsPort != 0 {
		if err := validatePort(c.MetricsPort); err != nil {
			errs = append(errs, fmt.Errorf("metrics port: %w", err))
		} else if c.MetricsPort == c.Port {
			errs = append(errs, fmt.Errorf("metrics port: %d is the sidecar's API port: choose another (default %d), or 0 for none", c.MetricsPort, DefaultMetricsPort))
		}
	}
	port, err := controlPlanePort(c.ControlPlaneURL)
	if err != nil {
		errs = append(errs, fmt.Errorf("control plane URL: %w", err))
	} else if c.IstioExcludeControlPlane && (port == 80 || port == 443) {
		errs = append(errs, fmt.Errorf("control plane URL %q: port %d carries application traffic too, and excluding it from Istio's interception would take the whole pod's %d traffic out of the mesh: give the control plane a port of its own (7470) or turn the Istio exclusion off", c.ControlPlaneURL, port, port))
	}
	if c.ControlPlaneCA != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(c.ControlPlaneCA)) {
		errs = append(errs, errors.New("control plane CA: no PEM certificate in it (want -----BEGIN CERTIFICATE----- blocks)"))
	}
	if err := validateResources(c.Resources); err != nil {
		errs = append(errs, fmt.Errorf("resources: %w", err))
	}
	if err := validateLogLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log level: %w", err))
	}
	if c.BindingRoot == "" || !path.IsAbs(c.BindingRoot) || path.Clean(c.BindingRoot) != c.BindingRoot || c.BindingRoot == "/" {
		errs = append(errs, fmt.Errorf("binding root %q must be a clean absolute path other than /, such as %s", c.BindingRoot, DefaultBindingRoot))
	}
	if c.TokenAudience == "" {
		errs = append(errs, fmt.Errorf("token audience is empty: use %q unless the control plane expects another", DefaultTokenAudience))
	}
	if c.Version == "" {
		errs = append(errs, errors.New("version is empty: set the ddi version recorded in "+AnnotationInjectedVersion))
	}
	return errors.Join(errs...)
}

func validateImage(image string) error {
	if image == "" {
		return errors.New("empty image reference")
	}
	if strings.ContainsFunc(image, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("image reference %q contains spaces or control characters", image)
	}
	return nil
}

// reservedBy names who reserves port, or "" when nobody does. The sidecar
// must not take a port that Knative, Dapr or Istio use inside pods.
func reservedBy(port int32) string {
	switch {
	case port == 3500 || port == 50001:
		return "Dapr"
	case port == 8008 || port == 8012 || port == 8013 || port == 8022 || port == 8112 || port == 9090 || port == 9091:
		return "Knative"
	case port >= 15000 && port <= 15090:
		return "Istio"
	}
	return ""
}

func validatePort(port int32) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("%d is not a port number (1-65535)", port)
	}
	if who := reservedBy(port); who != "" {
		return fmt.Errorf("%d is reserved by %s inside pods: choose another, such as %d", port, who, DefaultPort)
	}
	return nil
}

// controlPlanePort checks the control plane URL and returns its port.
func controlPlanePort(raw string) (int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return 0, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return 0, fmt.Errorf("%q must start with http:// or https://", raw)
	}
	if u.Hostname() == "" {
		return 0, fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return 0, fmt.Errorf("%q must not carry credentials, a query or a fragment", raw)
	}
	p := u.Port()
	if p == "" {
		if u.Scheme == "https" {
			return 443, nil
		}
		return 80, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q: port %q is not a port number", raw, p)
	}
	return n, nil
}

func validateResources(r corev1.ResourceRequirements) error {
	var errs []error
	for _, list := range []struct {
		name string
		l    corev1.ResourceList
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		for name, q := range list.l {
			if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
				errs = append(errs, fmt.Errorf("%s.%s: only cpu and memory can be set", list.name, name))
			}
			if q.Sign() < 0 {
				errs = append(errs, fmt.Errorf("%s.%s: %s is negative", list.name, name, q.String()))
			}
		}
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := r.Requests[name]
		lim, okLim := r.Limits[name]
		if okReq && okLim && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("%s request %s is above its limit %s", name, req.String(), lim.String()))
		}
	}
	return errors.Join(errs...)
}

var logLevels = []string{"debug", "info", "warn", "error"}

func validateLogLevel(l string) error {
	for _, v := range logLevels {
		if l == v {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", l, strings.Join(logLevels, ", "))
}
