package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextWithoutJitter(t *testing.T) {
	b := &Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := b.Next(); got != w {
			t.Fatalf("Next() #%d = %s, want %s", i, got, w)
		}
	}
	b.Reset()
	if got := b.Next(); got != 100*time.Millisecond {
		t.Errorf("Next() after Reset = %s, want 100ms", got)
	}
}

func TestDelay(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	tests := []struct {
		name     string
		attempt  int
		jitter   bool
		min, max time.Duration
	}{
		{name: "first, no jitter", attempt: 0, min: lo, max: lo},
		{name: "third, no jitter", attempt: 2, min: 4 * lo, max: 4 * lo},
		{name: "capped, no jitter", attempt: 10, min: hi, max: hi},
		{name: "huge attempt, no jitter", attempt: 1000, min: hi, max: hi},
		{name: "first, jitter", attempt: 0, jitter: true, min: lo, max: lo},
		{name: "third, jitter", attempt: 2, jitter: true, min: lo, max: 4 * lo},
		{name: "capped, jitter", attempt: 1000, jitter: true, min: lo, max: hi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Backoff{Min: lo, Max: hi, Jitter: tt.jitter}
			for range 100 {
				if d := b.Delay(tt.attempt); d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d) = %s, want within [%s, %s]", tt.attempt, d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := &Backoff{Min: time.Hour, Max: time.Hour}
	if b.Wait(ctx) {
		t.Errorf("Wait(cancelled ctx) = true, want false")
	}
	if !(&Backoff{Min: time.Millisecond, Max: time.Millisecond}).Wait(t.Context()) {
		t.Errorf("Wait(live ctx) = false, want true")
	}
}

// TestJitter checks that jittered delays spread over their range: the
// sidecars cut off from a restarting control plane must not return at once.
func TestJitter(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{attempt: 0, min: lo, max: lo},
		{attempt: 1, min: lo, max: 200 * time.Millisecond},
		{attempt: 3, min: lo, max: 800 * time.Millisecond},
		{attempt: 10, min: lo, max: hi},
		{attempt: 100, min: lo, max: hi},
	}
	b := &Backoff{Min: lo, Max: hi, Jitter: true}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := b.Delay(tt.attempt)
			if d < tt.min || d > tt.max {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", tt.attempt, d, tt.min, tt.max)
			}
			seen[d] = true
		}
		if tt.max > tt.min && len(seen) < 10 {
			t.Errorf("Delay(%d) took %d distinct values in 200 draws, want jitter", tt.attempt, len(seen))
		}
	}
}
