package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSidecarBuildHasNoKubernetes guards the sidecar image's dependency
// list: ddi built with -tags nokube must not link Kubernetes libraries,
// whose init functions and pages cost the sidecar memory and start-up time.
func TestSidecarBuildHasNoKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "nokube", "-deps", "ddi.dev/ddi/cmd/ddi").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/client-go", "k8s.io/api/", "k8s.io/apimachinery", "sigs.k8s.io/controller-runtime", "go.etcd.io/etcd"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("the nokube build links %s", pkg)
			}
		}
	}
}
