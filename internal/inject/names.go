package inject

// Keys of the labels and annotations the injector reads and writes. Every
// one is described, with its default, in docs/injection.md.
const (
	// KeyInject opts in or out. As a namespace label its values are
	// "enabled" and "disabled"; as a pod label or annotation "true" and
	// "false".
	KeyInject = "ddi.dev/inject"
	// AnnotationDependencies lists the function's dependencies as
	// "ALIAS=SELECTOR;ALIAS=SELECTOR" (see registry.ParseDependencies).
	AnnotationDependencies = "ddi.dev/dependencies"
	// AnnotationSidecarMode chooses "native" (an init container with
	// restartPolicy Always) or "container" (a plain container).
	AnnotationSidecarMode = "ddi.dev/sidecar-mode"
	// AnnotationSidecarImage overrides Config.Image for one pod.
	AnnotationSidecarImage = "ddi.dev/sidecar-image"
	// AnnotationSidecarPort overrides Config.Port for one pod.
	AnnotationSidecarPort = "ddi.dev/sidecar-port"
	// AnnotationMetricsPort overrides Config.MetricsPort for one pod; "0"
	// turns the metrics listener off.
	AnnotationMetricsPort = "ddi.dev/sidecar-metrics-port"
	// AnnotationCPURequest and the three keys after it override one value
	// of Config.Resources for one pod. The value is a Kubernetes quantity.
	AnnotationCPURequest    = "ddi.dev/sidecar-cpu-request"
	AnnotationCPULimit      = "ddi.dev/sidecar-cpu-limit"
	AnnotationMemoryRequest = "ddi.dev/sidecar-memory-request"
	AnnotationMemoryLimit   = "ddi.dev/sidecar-memory-limit"
	// AnnotationLogLevel overrides Config.LogLevel for one pod.
	AnnotationLogLevel = "ddi.dev/log-level"
	// AnnotationAppContainers names, comma-separated, the containers that
	// get the binding volume and environment, instead of every application
	// container.
	AnnotationAppContainers = "ddi.dev/app-containers"
	// AnnotationInjectedVersion marks an injected pod with the version of
	// ddi that injected it.
	AnnotationInjectedVersion = "ddi.dev/injected-version"

	// AnnotationIstioExcludeOutboundPorts is Istio's per-pod list of
	// outbound ports its iptables rules leave alone. The injector adds the
	// control plane's port to it (see docs/injection.md, "Istio").
	AnnotationIstioExcludeOutboundPorts = "traffic.sidecar.istio.io/excludeOutboundPorts"
)

// Names and paths of what the injector adds to a pod.
const (
	// SidecarName is the name of the injected container.
	SidecarName = "ddi-sidecar"
	// VolumeBindings is the shared emptyDir the sidecar writes binding
	// files into, mounted read-only into the application containers.
	VolumeBindings = "ddi-bindings"
	// VolumeToken holds the projected service-account token the sidecar
	// presents to the control plane. Only the sidecar mounts it.
	VolumeToken = "ddi-token"
	// VolumePodInfo is a downward-API projection of the pod's name,
	// namespace, uid, labels and annotations. Only the sidecar mounts it.
	VolumePodInfo = "ddi-podinfo"

	// TokenDir is where VolumeToken is mounted; the token is TokenPath.
	TokenDir  = "/var/run/secrets/ddi.dev"
	TokenPath = TokenDir + "/token"
	// PodInfoDir is where VolumePodInfo is mounted.
	PodInfoDir = "/etc/ddi/podinfo"

	// TokenExpirationSeconds is the lifetime of the projected token; the
	// kubelet renews it well before it expires.
	TokenExpirationSeconds = 3600
)

// Environment variables the injector sets.
const (
	// EnvBindingRoot is the Service Binding root directory, set in the
	// application containers and the sidecar.
	EnvBindingRoot = "SERVICE_BINDING_ROOT"
	// EnvAddr is the sidecar's base URL, set in the application containers.
	EnvAddr = "DDI_ADDR"

	// The sidecar's own settings.
	EnvListen         = "DDI_SIDECAR_LISTEN"
	EnvControlPlane   = "DDI_CONTROL_PLANE"
	EnvControlPlaneCA = "DDI_CONTROL_PLANE_CA"
	EnvLogLevel       = "DDI_LOG_LEVEL"
	EnvTokenFile      = "DDI_TOKEN_FILE"
	EnvPodInfoDir     = "DDI_PODINFO_DIR"
	EnvDependencies   = "DDI_DEPENDENCIES"
	EnvPodName        = "DDI_POD_NAME"
	EnvPodNamespace   = "DDI_POD_NAMESPACE"
	EnvPodUID         = "DDI_POD_UID"
	EnvServiceAccount = "DDI_SERVICE_ACCOUNT"
	// EnvOutliveApp and EnvAppPorts make a plain-container sidecar outlive
	// the function when the pod stops (sidecar.Config.OutliveApp).
	EnvOutliveApp = "DDI_OUTLIVE_APP"
	EnvAppPorts   = "DDI_APP_PORTS"
	// EnvMetricsListen is the sidecar's metrics-only listener on the pod IP.
	EnvMetricsListen = "DDI_METRICS_LISTEN"
)

// AnnotationDefaultContainer is kubectl's: the container that `kubectl logs`
// and `exec` pick when none is named. The ordered sidecar is the pod's
// first container, so the injector names the function's.
const AnnotationDefaultContainer = "kubectl.kubernetes.io/default-container"

// infraContainers are containers that platforms and meshes add to a pod.
// They never get the binding volume or environment, and the native sidecar
// is placed after the init containers among them.
var infraContainers = map[string]bool{
	"queue-proxy":               true, // Knative Serving
	"istio-proxy":               true, // Istio
	"istio-init":                true,
	"istio-validation":          true,
	"enable-core-dump":          true,
	"linkerd-proxy":             true, // Linkerd
	"linkerd-init":              true,
	"linkerd-network-validator": true,
	"daprd":                     true, // Dapr
}

// fissionExecutorLabel marks pods created by Fission's executor; in them the
// "fetcher" container is Fission's, not the function's.
const fissionExecutorLabel = "executorType"
