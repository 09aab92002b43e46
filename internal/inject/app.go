package inject

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// appEnv is what every application container learns: where binding files
// are and where the sidecar answers.
func appEnv(s settings, cfg Config) []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: EnvBindingRoot, Value: cfg.BindingRoot},
		{Name: EnvAddr, Value: fmt.Sprintf("http://127.0.0.1:%d", s.port)},
	}
}

// wireContainer mounts the binding volume read-only into c and adds env,
// leaving alone any variable c already sets.
func wireContainer(c *corev1.Container, env []corev1.EnvVar, cfg Config) error {
	mounted := false
	for _, m := range c.VolumeMounts {
		switch {
		case m.Name == VolumeBindings:
			mounted = true
		case m.MountPath == cfg.BindingRoot:
			return fmt.Errorf("container %q already mounts volume %q at %s, where ddi puts binding files: move that mount, or name the containers ddi should wire with annotation %s", c.Name, m.Name, cfg.BindingRoot, AnnotationAppContainers)
		}
	}
	if !mounted {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: VolumeBindings, MountPath: cfg.BindingRoot, ReadOnly: true})
	}
next:
	for _, e := range env {
		for _, have := range c.Env {
			if have.Name == e.Name {
				continue next
			}
		}
		c.Env = append(c.Env, e)
	}
	return nil
}

// appContainers returns pointers to the containers of spec to wire: those
// named by the pod's annotation, or else every container that is not a
// platform's or a mesh's, plus, for a native sidecar, the init containers
// that start after it.
func appContainers(meta *metav1.ObjectMeta, spec *corev1.PodSpec, s settings) []*corev1.Container {
	var out []*corev1.Container
	if s.appContainers != nil {
		for _, n := range s.appContainers {
			if i := containerIndex(spec.InitContainers, n); i >= 0 {
				out = append(out, &spec.InitContainers[i])
			} else if i := containerIndex(spec.Containers, n); i >= 0 {
				out = append(out, &spec.Containers[i])
			}
		}
		return out
	}
	isApp := func(name string) bool {
		if name == SidecarName || infraContainers[name] {
			return false
		}
		// Fission's executor pairs the function's container with its own
		// "fetcher", which loads the code and never calls dependencies.
		if _, fission := meta.Labels[fissionExecutorLabel]; fission && name == "fetcher" {
			return false
		}
		return true
	}
	if s.mode == ModeNative {
		after := false
		for i := range spec.InitContainers {
			c := &spec.InitContainers[i]
			if c.Name == SidecarName {
				after = true
				continue
			}
			if after && isApp(c.Name) {
				out = append(out, c)
			}
		}
	}
	for i := range spec.Containers {
		if isApp(spec.Containers[i].Name) {
			out = append(out, &spec.Containers[i])
		}
	}
	return out
}
