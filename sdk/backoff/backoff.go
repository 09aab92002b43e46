package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff paces retries: the delay starts at Min and doubles with each
// attempt up to Max. With Jitter, each delay is instead drawn at random from
// [Min, that doubled delay] ("full jitter" above the floor), so that many
// clients cut off at once do not come back at once.
//
// The zero value is not useful; set Min and Max. A Backoff is not safe for
// concurrent use: it belongs to one retry loop.
type Backoff struct {
	Min, Max time.Duration
	Jitter   bool

	attempt int
}

// Delay returns the delay before retry number attempt (0 for the first),
// without changing b.
func (b *Backoff) Delay(attempt int) time.Duration {
	ceil := b.Max
	if attempt < 30 {
		ceil = min(b.Max, b.Min<<attempt)
	}
	if ceil <= b.Min {
		return b.Min
	}
	if !b.Jitter {
		return ceil
	}
	return b.Min + rand.N(ceil-b.Min+1)
}

// Next returns the delay before the next retry and counts the retry.
func (b *Backoff) Next() time.Duration {
	d := b.Delay(b.attempt)
	b.attempt++
	return d
}

// Reset starts over at Min, after an attempt that got somewhere.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps for Next's delay. It returns false, at once, if ctx ends
// first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
