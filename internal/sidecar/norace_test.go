//go:build !race

package sidecar

// uploadRSSLimit bounds the sidecar's peak RSS during a 1 GiB upload.
const uploadRSSLimit = 64 << 20
