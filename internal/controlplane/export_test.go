package controlplane

import "time"

// SetStreamWriteTimeout changes the per-message write timeout of streams
// for the duration of a test.
func SetStreamWriteTimeout(t interface{ Cleanup(func()) }, d time.Duration) {
	old := streamWriteTimeout
	streamWriteTimeout = d
	t.Cleanup(func() { streamWriteTimeout = old })
}
