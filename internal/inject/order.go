package inject

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// outliveApps tells a plain-container sidecar to outlive the function: the
// kubelet stops a pod's plain containers all at once, so on SIGTERM the
// sidecar keeps serving until the function's ports (the TCP ports its
// containers declare) refuse connections and it has been idle for a moment
// (sidecar.Config.OutliveApp). A native sidecar needs none of this: the
// kubelet stops it after the function.
func outliveApps(spec *corev1.PodSpec, apps []*corev1.Container) {
	i := containerIndex(spec.Containers, SidecarName)
	if i < 0 {
		return
	}
	var ports []int
	for _, c := range apps {
		for _, p := range c.Ports {
			if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
				ports = append(ports, int(p.ContainerPort))
			}
		}
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	sc := &spec.Containers[i]
	sc.Env = append(sc.Env, corev1.EnvVar{Name: EnvOutliveApp, Value: "true"})
	if len(ports) > 0 {
		s := make([]string, len(ports))
		for i, p := range ports {
			s[i] = strconv.Itoa(p)
		}
		sc.Env = append(sc.Env, corev1.EnvVar{Name: EnvAppPorts, Value: strings.Join(s, ",")})
	}
}

// defaultContainer names the function's container as kubectl's default,
// unless the pod names one already.
func defaultContainer(meta *metav1.ObjectMeta, name string) {
	if _, ok := meta.Annotations[AnnotationDefaultContainer]; ok {
		return
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[AnnotationDefaultContainer] = name
}

// scrapeAnnotations tells a cluster's Prometheus (the conventional
// prometheus.io annotations) to scrape the sidecar's metrics listener,
// unless the pod already names a scrape target of its own, which wins.
func scrapeAnnotations(meta *metav1.ObjectMeta, port int32) {
	for k := range meta.Annotations {
		if strings.HasPrefix(k, "prometheus.io/") {
			return
		}
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations["prometheus.io/scrape"] = "true"
	meta.Annotations["prometheus.io/port"] = strconv.Itoa(int(port))
	meta.Annotations["prometheus.io/path"] = "/metrics"
}
