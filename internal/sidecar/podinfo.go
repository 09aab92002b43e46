package sidecar

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// podInfoFiles are the downward-API files of the pod whose change means
// the control plane should identify the pod again: its workload name,
// labels (DependencySets select by them) and the ddi.dev/dependencies
// annotation all come from them.
var podInfoFiles = []string{"labels", "annotations"}

// errIdentityChanged ends a stream whose pod changed its labels or
// annotations; the sidecar reconnects at once and the control plane
// derives the consumer again.
var errIdentityChanged = errors.New("the pod's labels or annotations changed: reconnecting to be identified again")

// readPodInfo returns the content of the pod-info files in dir, nil when
// dir is empty. A missing file reads as empty.
func readPodInfo(dir string) []byte {
	if dir == "" {
		return nil
	}
	var b bytes.Buffer
	for _, name := range podInfoFiles {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		b.WriteString(name)
		b.WriteByte(0)
		b.Write(data)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// watchPodInfo polls the pod-info files in dir every interval and calls
// changed once, when their content differs from seen, then returns. It
// returns when ctx ends. The kubelet rewrites the files in place
// (a symlink swap) when the pod's labels or annotations change, as when
// Fission's pool manager specialises a generic pod into a function.
func watchPodInfo(ctx context.Context, dir string, seen []byte, interval time.Duration, changed func()) {
	if dir == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !bytes.Equal(readPodInfo(dir), seen) {
				changed()
				return
			}
		}
	}
}
