package inject

import (
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// sidecarContainer builds the ddi sidecar for one pod.
//
// It declares no containerPort: the sidecar listens on loopback only, and
// Knative allows a single port in a pod's spec, the function's. Because it
// listens on loopback, the kubelet (which probes from the node) cannot reach
// it over HTTP; the probes run `ddi probe URL` inside the container instead.
func sidecarContainer(s settings, cfg Config, t target) corev1.Container {
	c := corev1.Container{
		Name:    SidecarName,
		Image:   s.image,
		Command: []string{"ddi"},
		Args:    []string{"sidecar"},
		Env:     sidecarEnv(s, cfg, t),
		VolumeMounts: []corev1.VolumeMount{
			{Name: VolumeBindings, MountPath: cfg.BindingRoot},
			{Name: VolumeToken, MountPath: TokenDir, ReadOnly: true},
			{Name: VolumePodInfo, MountPath: PodInfoDir, ReadOnly: true},
		},
		Resources:                *s.resources.DeepCopy(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext:          sidecarSecurityContext(),
	}
	if t == targetPod {
		if s.mode == ModeContainer {
			// The other modes' postStart hook has waited for readiness
			// already.
			c.StartupProbe = probe(s.port, "/readyz", 1, 1, 60)
		}
		c.LivenessProbe = probe(s.port, "/healthz", 10, 2, 3)
	}
	if s.mode == ModeNative {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	if s.mode == ModeOrdered || s.mode == ModeNative {
		// The kubelet runs a container's postStart hook before it starts
		// the next container (ordered) and before it counts a native
		// sidecar as started (native; without a startup probe the next
		// step is then one on-demand relist away instead of a probe
		// period).
		c.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
			Command: []string{"ddi", "probe", "--wait=" + PostStartWait.String(), readyURL(s.port) + "?wait=" + PostStartWait.String()},
		}}}
	}
	return c
}

// PostStartWait bounds the postStart hook of the ordered and native
// sidecars, which asks the sidecar's /readyz to answer as soon as it is
// ready (?wait=). The kubelet starts the function's containers only after
// the hook returns; if the sidecar is not ready by then (the control plane
// has been unreachable all along), the hook fails and the kubelet restarts
// the sidecar. An ordered sidecar's function then starts without waiting
// any longer; a native sidecar's keeps waiting for the restarted one
// (docs/injection.md).
const PostStartWait = 5 * time.Minute

func readyURL(port int32) string { return fmt.Sprintf("http://127.0.0.1:%d/readyz", port) }

// sidecarEnv is the sidecar's configuration (docs/injection.md lists it).
func sidecarEnv(s settings, cfg Config, t target) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: EnvListen, Value: fmt.Sprintf("127.0.0.1:%d", s.port)},
		{Name: EnvControlPlane, Value: cfg.ControlPlaneURL},
	}
	if cfg.ControlPlaneCA != "" {
		env = append(env, corev1.EnvVar{Name: EnvControlPlaneCA, Value: cfg.ControlPlaneCA})
	}
	env = append(env,
		corev1.EnvVar{Name: EnvLogLevel, Value: s.logLevel},
		corev1.EnvVar{Name: EnvBindingRoot, Value: cfg.BindingRoot},
		corev1.EnvVar{Name: EnvTokenFile, Value: TokenPath},
		corev1.EnvVar{Name: EnvPodInfoDir, Value: PodInfoDir},
	)
	if s.dependencies != "" {
		env = append(env, corev1.EnvVar{Name: EnvDependencies, Value: s.dependencies})
	}
	if s.metricsPort != 0 {
		env = append(env, corev1.EnvVar{Name: EnvMetricsListen, Value: fmt.Sprintf(":%d", s.metricsPort)})
	}
	// Knative refuses fieldRef in a template's environment unless an
	// operator enabled kubernetes.podspec-fieldref; the pod-info volume
	// carries the same facts, so templates rely on it alone.
	if t == targetPod {
		env = append(env,
			fieldEnv(EnvPodName, "metadata.name"),
			fieldEnv(EnvPodNamespace, "metadata.namespace"),
			fieldEnv(EnvPodUID, "metadata.uid"),
			fieldEnv(EnvServiceAccount, "spec.serviceAccountName"),
		)
	}
	return env
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{
		Name:      name,
		ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}},
	}
}

// probe runs `ddi probe` against the sidecar's own loopback API.
func probe(port int32, path string, period, timeout, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{
			Exec: &corev1.ExecAction{Command: []string{"ddi", "probe", fmt.Sprintf("http://127.0.0.1:%d%s", port, path)}},
		},
		PeriodSeconds:    period,
		TimeoutSeconds:   timeout,
		SuccessThreshold: 1,
		FailureThreshold: failures,
	}
}

// sidecarSecurityContext meets the "restricted" Pod Security Standard, so
// injection never makes a compliant pod non-compliant. It sets no user: the
// image declares a numeric non-root one (65532), which lets the kubelet
// check runAsNonRoot, and platforms that assign users from a range
// (OpenShift) can still do so.
func sidecarSecurityContext() *corev1.SecurityContext {
	no, yes := false, true
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: &no,
		ReadOnlyRootFilesystem:   &yes,
		RunAsNonRoot:             &yes,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// insertSidecar puts c into spec: as a native sidecar, at the front of the
// init containers but after those of a service mesh (whose proxy must be up
// before anything that talks to the network); in ordered mode, first among
// the containers, but after a mesh proxy whose iptables rules were written
// without ddi's exclusion (the sidecar needs that proxy to reach the
// control plane); as a plain container, last.
func insertSidecar(spec *corev1.PodSpec, c corev1.Container, mode string) {
	switch mode {
	case ModeContainer:
		spec.Containers = append(spec.Containers, c)
		return
	case ModeOrdered:
		at := 0
		if mesh := meshBlocksNative(spec); mesh != "" {
			at = containerIndex(spec.Containers, mesh) + 1
		}
		spec.Containers = slices.Insert(spec.Containers, at, c)
		return
	}
	at := 0
	for i := range spec.InitContainers {
		if infraContainers[spec.InitContainers[i].Name] {
			at = i + 1
		}
	}
	spec.InitContainers = slices.Insert(spec.InitContainers, at, c)
}
