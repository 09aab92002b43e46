package inject

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ddi.dev/ddi/internal/registry"
)

// Sidecar modes, the values of AnnotationSidecarMode (docs/injection.md,
// "Sidecar modes").
const (
	// ModeOrdered is a plain container placed before the function's, with
	// a postStart hook that returns once the sidecar is ready: the kubelet
	// starts a pod's containers in order and runs each postStart hook to
	// completion before it starts the next container, all in one pass. The
	// default for pods that run until deleted.
	ModeOrdered = "ordered"
	// ModeNative is an init container with restartPolicy Always (Kubernetes
	// 1.29+) and the same postStart hook as ModeOrdered: the kubelet starts
	// it before the rest of the pod, counts it as started once the hook
	// has returned, and stops it after the function. The default for pods
	// that run to completion (Jobs), where a plain container would keep
	// the pod running.
	ModeNative = "native"
	// ModeContainer is a plain container after the function's, started
	// beside it without any order.
	ModeContainer = "container"
)

// target says where the mutated pod spec will be read. A Pod goes to the
// API server as it is; a Knative template is first validated by Knative's
// webhook, which refuses init containers with restartPolicy, downward-API
// environment variables and probes on extra containers by default.
type target int

const (
	targetPod target = iota
	targetKnativeTemplate
)

// settings is the per-pod result of Config plus the pod's annotations.
type settings struct {
	image        string
	port         int32
	metricsPort  int32 // 0: none
	mode         string
	resources    corev1.ResourceRequirements
	logLevel     string
	dependencies string
	// appContainers, when not nil, are the only containers to wire.
	appContainers []string
}

// podSettings applies the pod's annotations to cfg. Every problem is
// reported, each naming its annotation.
func podSettings(meta *metav1.ObjectMeta, spec *corev1.PodSpec, cfg Config, t target) (settings, error) {
	s := settings{
		image:       cfg.Image,
		port:        cfg.Port,
		metricsPort: cfg.MetricsPort,
		mode:        ModeContainer,
		resources:   *cfg.Resources.DeepCopy(),
		logLevel:    cfg.LogLevel,
	}
	runsToCompletion := spec.RestartPolicy != "" && spec.RestartPolicy != corev1.RestartPolicyAlways
	switch {
	case t != targetPod:
		// Knative refuses lifecycle hooks and init containers with a
		// restartPolicy in a template.
	case runsToCompletion && cfg.NativeSidecars:
		s.mode = ModeNative
	case !runsToCompletion:
		s.mode = ModeOrdered
	}
	a := meta.Annotations
	var errs []error
	bad := func(key string, err error) { errs = append(errs, fmt.Errorf("annotation %s: %w", key, err)) }

	if v, ok := a[AnnotationSidecarMode]; ok {
		switch v {
		case ModeContainer:
			s.mode = ModeContainer
		case ModeOrdered:
			if t == targetKnativeTemplate {
				bad(AnnotationSidecarMode, errors.New("Knative refuses lifecycle hooks in a Service or Configuration template: use \"container\", or leave the template alone and let the webhook inject the revision's pods"))
			} else {
				s.mode = ModeOrdered
			}
		case ModeNative:
			switch {
			case t == targetKnativeTemplate:
				bad(AnnotationSidecarMode, errors.New("Knative refuses init containers with a restartPolicy in a Service or Configuration template: use \"container\", or leave the template alone and let the webhook inject the revision's pods"))
			case !cfg.NativeSidecars:
				bad(AnnotationSidecarMode, errors.New("this cluster does not run native sidecars (Kubernetes 1.29 or later): use \"container\""))
			default:
				s.mode = ModeNative
			}
		default:
			bad(AnnotationSidecarMode, fmt.Errorf("%q is not a sidecar mode: use %q, %q or %q", v, ModeOrdered, ModeNative, ModeContainer))
		}
	}
	if s.mode == ModeNative {
		if mesh := meshBlocksNative(spec); mesh != "" {
			if a[AnnotationSidecarMode] == ModeNative {
				bad(AnnotationSidecarMode, fmt.Errorf("%s was injected first as a plain container with its iptables init container, so a native ddi sidecar could not reach the control plane before %s starts, and %s only starts after the ddi sidecar is up: use \"container\", or let the ddi webhook run before the mesh's", mesh, mesh, mesh))
			} else {
				s.mode = ModeContainer
			}
		}
	}
	if v, ok := a[AnnotationSidecarImage]; ok {
		if err := validateImage(v); err != nil {
			bad(AnnotationSidecarImage, err)
		} else {
			s.image = v
		}
	}
	if v, ok := a[AnnotationSidecarPort]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		switch {
		case err != nil:
			bad(AnnotationSidecarPort, fmt.Errorf("%q is not a port number", v))
		default:
			if err := validatePort(int32(n)); err != nil {
				bad(AnnotationSidecarPort, err)
			} else {
				s.port = int32(n)
			}
		}
	}
	if v, ok := a[AnnotationMetricsPort]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		switch {
		case err != nil:
			bad(AnnotationMetricsPort, fmt.Errorf("%q is not a port number (0 turns the metrics listener off)", v))
		case n == 0:
			s.metricsPort = 0
		default:
			if err := validatePort(int32(n)); err != nil {
				bad(AnnotationMetricsPort, err)
			} else {
				s.metricsPort = int32(n)
			}
		}
	}
	if s.metricsPort != 0 && s.metricsPort == s.port {
		bad(AnnotationMetricsPort, fmt.Errorf("%d is the sidecar's API port: choose another, or 0 for none", s.metricsPort))
	}
	for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
		for _, p := range c.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			if p.ContainerPort == s.port {
				errs = append(errs, fmt.Errorf("container %q declares port %d, which the ddi sidecar listens on: set annotation %s to a free port", c.Name, s.port, AnnotationSidecarPort))
			}
			if s.metricsPort != 0 && p.ContainerPort == s.metricsPort {
				errs = append(errs, fmt.Errorf("container %q declares port %d, where the ddi sidecar serves its metrics: set annotation %s to a free port, or to 0 for none", c.Name, s.metricsPort, AnnotationMetricsPort))
			}
		}
	}
	for _, r := range []struct {
		key  string
		list *corev1.ResourceList
		name corev1.ResourceName
	}{
		{AnnotationCPURequest, &s.resources.Requests, corev1.ResourceCPU},
		{AnnotationCPULimit, &s.resources.Limits, corev1.ResourceCPU},
		{AnnotationMemoryRequest, &s.resources.Requests, corev1.ResourceMemory},
		{AnnotationMemoryLimit, &s.resources.Limits, corev1.ResourceMemory},
	} {
		v, ok := a[r.key]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		switch {
		case err != nil:
			bad(r.key, fmt.Errorf("%q is not a quantity (examples: 50m or 0.1 for CPU, 32Mi for memory)", v))
		case q.Sign() < 0:
			bad(r.key, fmt.Errorf("%q is negative", v))
		default:
			if *r.list == nil {
				*r.list = corev1.ResourceList{}
			}
			(*r.list)[r.name] = q
		}
	}
	for _, r := range []struct {
		name             corev1.ResourceName
		reqKey, limitKey string
	}{
		{corev1.ResourceCPU, AnnotationCPURequest, AnnotationCPULimit},
		{corev1.ResourceMemory, AnnotationMemoryRequest, AnnotationMemoryLimit},
	} {
		req, okReq := s.resources.Requests[r.name]
		lim, okLim := s.resources.Limits[r.name]
		if okReq && okLim && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("sidecar %s request %s is above its limit %s: adjust annotation %s or %s", r.name, req.String(), lim.String(), r.reqKey, r.limitKey))
		}
	}
	if v, ok := a[AnnotationLogLevel]; ok {
		if err := validateLogLevel(v); err != nil {
			bad(AnnotationLogLevel, err)
		} else {
			s.logLevel = v
		}
	}
	if v, ok := a[AnnotationDependencies]; ok {
		if _, err := registry.ParseDependencies(v); err != nil {
			bad(AnnotationDependencies, err)
		} else {
			s.dependencies = strings.TrimSpace(v)
		}
	}
	if v, ok := a[AnnotationAppContainers]; ok {
		if _, explicit := a[AnnotationSidecarMode]; !explicit && s.mode == ModeOrdered && cfg.NativeSidecars && namesInitContainer(v, spec) {
			// An init container that uses ddi runs before any plain
			// container: only a native sidecar starts before it.
			s.mode = ModeNative
		}
		names, err := appContainerNames(v, spec, s.mode)
		if err != nil {
			bad(AnnotationAppContainers, err)
		} else {
			s.appContainers = names
		}
	}
	if runsToCompletion && s.mode != ModeNative {
		errs = append(errs, fmt.Errorf("the pod runs to completion (restartPolicy %s) and a plain sidecar container (mode %s) would keep it running forever: inject it as a native sidecar (Kubernetes 1.29 or later, annotation %s: %s), or opt it out with %s: \"false\"", spec.RestartPolicy, s.mode, AnnotationSidecarMode, ModeNative, KeyInject))
	}
	return s, errors.Join(errs...)
}

// appContainerNames parses the comma-separated list of AnnotationAppContainers.
func appContainerNames(v string, spec *corev1.PodSpec, mode string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		switch {
		case n == SidecarName:
			return nil, fmt.Errorf("%q is the sidecar itself", n)
		case containerIndex(spec.Containers, n) >= 0:
		case containerIndex(spec.InitContainers, n) >= 0:
			if mode != ModeNative {
				return nil, fmt.Errorf("init container %q runs before a plain sidecar container starts, so it cannot use it: remove it, or use %s: %s", n, AnnotationSidecarMode, ModeNative)
			}
		default:
			return nil, fmt.Errorf("the pod has no container %q", n)
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, errors.New("lists no container: remove the annotation to wire every application container")
	}
	return names, nil
}

// namesInitContainer reports whether the AnnotationAppContainers list v
// names one of spec's init containers.
func namesInitContainer(v string, spec *corev1.PodSpec) bool {
	for _, n := range strings.Split(v, ",") {
		if containerIndex(spec.InitContainers, strings.TrimSpace(n)) >= 0 {
			return true
		}
	}
	return false
}

func containerIndex(cs []corev1.Container, name string) int {
	for i := range cs {
		if cs[i].Name == name {
			return i
		}
	}
	return -1
}

// meshBlocksNative names the mesh proxy that would deadlock a native ddi
// sidecar, or returns "". That happens when a mesh injected the pod before
// ddi did, with its proxy as a plain container and an init container that
// redirects outbound traffic to it: the redirect rules are already written
// (without ddi's exclusion), and the proxy starts only after every init
// container, ddi's included, is up.
func meshBlocksNative(spec *corev1.PodSpec) string {
	for _, m := range []struct{ proxy, init string }{
		{"istio-proxy", "istio-init"},
		{"linkerd-proxy", "linkerd-init"},
	} {
		if containerIndex(spec.Containers, m.proxy) >= 0 && containerIndex(spec.InitContainers, m.init) >= 0 {
			return m.proxy
		}
	}
	return ""
}
