// Package bolt is the embedded registry store: a registry.Store kept in one
// bbolt file on the local machine, the default backend of local mode.
//
// The file holds three buckets. "providers" maps "namespace/name" to the
// provider as JSON. "events" maps each store revision (8 bytes, big-endian)
// to the change made at that revision, so that Watch can replay history
// from any revision the log still holds and then stream live changes
// without gaps or duplicates. "meta" holds the current revision, the
// revision up to which the log has been compacted, and the file format.
// Every write commits the provider, its event and the new revision in one
// transaction with bbolt's default fsync, so what a write reported as
// committed survives a crash or SIGKILL.
//
// Secrets are stored as given: the file is created readable by its owner
// only (0600, in a 0700 directory when Open creates it).
//
// One process at a time may open a store: the file is locked, and a second
// Open fails with ErrLocked after Options.LockTimeout instead of hanging.
//
// A Store owns one goroutine, the lease sweeper, which deletes providers
// whose lease has expired and emits their Delete events; Close stops it.
//
// The package must not validate or normalise providers (callers do that
// with registry.ValidateProvider) and must not know about Kubernetes or
// transports. It deep-copies what it is given and what it returns, so no
// caller can change stored state behind its back.
package bolt
