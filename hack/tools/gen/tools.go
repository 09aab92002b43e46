//go:build tools

// Package tools pins the code generators hack/gen.sh builds. It is its own
// module so that controller-tools and its dependencies never enter the
// build list of ddi.dev/ddi.
package tools

import (
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
