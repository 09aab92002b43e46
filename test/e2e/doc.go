// Package e2e holds end-to-end tests that build the ddi binary and run
// real processes. The local tests run with `go test ./...`; the Kubernetes
// ones need the build tag e2e and a local cluster (see the README).
package e2e
