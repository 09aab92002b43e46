// Package ddi is the Go SDK of ddi, distributed dependency injection for
// serverless functions. A function talks to the ddi sidecar that runs beside
// it (its address is in DDI_ADDR) to resolve and watch its bindings, register
// providers at run time, invoke other functions through the sidecar, and have
// its dependencies injected as ready, typed clients that stay valid when the
// bindings change underneath them.
//
// The zero Client works from the injected environment:
//
//	var c ddi.Client
//	b, err := c.Resolve(ctx, "db")
//
// Inject fills a struct from its `ddi:"alias"` tags. The base package knows
// *http.Client, string, *url.URL and Binding fields; database and messaging
// clients come from sub-packages that register factories when imported, the
// way database/sql drivers do:
//
//	import _ "ddi.dev/ddi/sdk/postgres" // *sql.DB, *pgxpool.Pool
//	import _ "ddi.dev/ddi/sdk/redis"    // *redis.Client
//	import _ "ddi.dev/ddi/sdk/nats"     // *nats.Conn
//
// This package must depend on the standard library only: no database or
// messaging driver and no Kubernetes packages (a test checks it with
// `go list -deps`).
package ddi
