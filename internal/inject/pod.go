package inject

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod injects the ddi sidecar into pod, in place. It does not decide
// whether the pod should be injected (see Decide), but it is idempotent: a
// pod that already has the sidecar comes back untouched with changed false.
// On error the pod is untouched too, and the error names the annotation or
// field to fix.
func Pod(pod *corev1.Pod, cfg Config) (changed bool, err error) {
	return inject(&pod.ObjectMeta, &pod.Spec, cfg, targetPod)
}

// inject mutates meta and spec, or leaves both alone and reports why not.
func inject(meta *metav1.ObjectMeta, spec *corev1.PodSpec, cfg Config, t target) (bool, error) {
	if err := cfg.Validate(); err != nil {
		return false, fmt.Errorf("injector configuration: %w", err)
	}
	if hasSidecar(spec) {
		return false, nil
	}
	if spec.HostNetwork {
		return false, errors.New("the pod uses hostNetwork: the sidecar's loopback API would be shared with the node; opt the pod out with " + KeyInject + ": \"false\"")
	}
	s, err := podSettings(meta, spec, cfg, t)
	if err != nil {
		return false, err
	}
	m, sp := meta.DeepCopy(), spec.DeepCopy()
	if err := addVolumes(sp, sidecarVolumes(cfg)); err != nil {
		return false, err
	}
	insertSidecar(sp, sidecarContainer(s, cfg, t), s.mode)
	setFSGroup(sp, t)
	env := appEnv(s, cfg)
	apps := appContainers(m, sp, s)
	for _, c := range apps {
		if err := wireContainer(c, env, cfg); err != nil {
			return false, err
		}
	}
	if s.mode != ModeNative {
		outliveApps(sp, apps)
	}
	if s.mode == ModeOrdered && len(apps) > 0 {
		defaultContainer(m, apps[0].Name)
	}
	if s.metricsPort != 0 {
		scrapeAnnotations(m, s.metricsPort)
	}
	annotate(m, cfg)
	*meta, *spec = *m, *sp
	return true, nil
}
