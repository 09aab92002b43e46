package inject

import (
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// annotate marks meta as injected and, unless cfg turns it off, keeps the
// control plane's port out of Istio's outbound interception.
func annotate(meta *metav1.ObjectMeta, cfg Config) {
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[AnnotationInjectedVersion] = cfg.Version
	if !cfg.IstioExcludeControlPlane {
		return
	}
	port, err := controlPlanePort(cfg.ControlPlaneURL)
	if err != nil {
		return // Validate refuses such a Config before we get here.
	}
	meta.Annotations[AnnotationIstioExcludeOutboundPorts] = addPort(meta.Annotations[AnnotationIstioExcludeOutboundPorts], port)
}

// addPort adds port to a comma-separated port list unless it is there,
// keeping the list as the user wrote it.
func addPort(list string, port int) string {
	p := strconv.Itoa(port)
	if strings.TrimSpace(list) == "" {
		return p
	}
	for _, have := range strings.Split(list, ",") {
		if strings.TrimSpace(have) == p {
			return list
		}
	}
	return list + "," + p
}
