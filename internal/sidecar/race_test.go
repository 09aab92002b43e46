//go:build race

package sidecar

// uploadRSSLimit is larger under the race detector, whose shadow memory
// multiplies a process's footprint; the product's bound is in norace_test.go.
const uploadRSSLimit = 256 << 20
