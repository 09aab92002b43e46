// Package drain closes a client's connections to an earlier binding after
// the binding changes.
package drain

import (
	"context"
	"time"

	"ddi.dev/ddi/sdk/backoff"
)

// For bounds how long Run keeps sweeping after a change.
const For = time.Minute

// Run calls sweep, which should take every idle connection out of the
// client's pool once (the pool drops the stale ones on the way) and give
// them back, until staleOpen reports that no connection of an earlier
// binding is open, or For has passed.
//
// One sweep is not enough. A connection that was running a query while
// the sweep ran goes back to the pool afterwards, and both database/sql's
// and go-redis's pools hand out the most recently returned connection
// first: under a steady load the few connections on top are reused and
// one buried below them would stay open to the old server for good. So
// Run sweeps again after a pause that doubles from 10 ms to 1 s; a
// connection busy with a long query is dropped by the first sweep after it
// is returned.
func Run(sweep func(context.Context), staleOpen func() bool) {
	ctx, cancel := context.WithTimeout(context.Background(), For)
	defer cancel()
	pause := backoff.Backoff{Min: 10 * time.Millisecond, Max: time.Second}
	for {
		sweep(ctx)
		if !staleOpen() || !pause.Wait(ctx) {
			return
		}
	}
}
