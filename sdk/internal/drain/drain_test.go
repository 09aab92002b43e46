package drain

import (
	"context"
	"testing"
)

func TestRunSweepsUntilNoStaleConnection(t *testing.T) {
	sweeps, staleLeft := 0, 3
	Run(func(context.Context) { sweeps++ }, func() bool { staleLeft--; return staleLeft > 0 })
	if sweeps != 3 {
		t.Errorf("Run swept %d times, want 3 (until staleOpen reported false)", sweeps)
	}
}

func TestRunSweepsOnceWhenNothingIsStale(t *testing.T) {
	sweeps := 0
	Run(func(context.Context) { sweeps++ }, func() bool { return false })
	if sweeps != 1 {
		t.Errorf("Run swept %d times, want 1", sweeps)
	}
}
