//go:build !unix

package sidecar

// rootGroup has no groups to give files to outside Unix.
func rootGroup(string) int { return -1 }
