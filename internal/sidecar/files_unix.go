//go:build unix

package sidecar

import (
	"os"
	"syscall"
)

// rootGroup is the group that owns the binding root, or -1 when it is the
// process's own (nothing to change) or cannot be read.
func rootGroup(root string) int {
	fi, err := os.Stat(root)
	if err != nil {
		return -1
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Gid) == os.Getegid() {
		return -1
	}
	return int(st.Gid)
}
