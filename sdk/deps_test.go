package ddi_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBaseDependencies guards the SDK's promise that the base package pulls
// in no driver and nothing from Kubernetes or the ddi daemons.
func TestBaseDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "ddi.dev/ddi/sdk").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ddi.dev/ddi/sdk: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		// The SDK's own backoff and wellknown packages are standard library
		// only too: go list -deps lists their dependencies, which this loop
		// checks.
		if pkg == "ddi.dev/ddi/sdk" || pkg == "ddi.dev/ddi/sdk/backoff" || pkg == "ddi.dev/ddi/sdk/wellknown" {
			continue
		}
		// Standard library packages have no dot in their first element.
		first, _, _ := strings.Cut(pkg, "/")
		if strings.Contains(first, ".") {
			t.Errorf("ddi.dev/ddi/sdk depends on %s; the base package must use the standard library only", pkg)
		}
	}
}
