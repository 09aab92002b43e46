// Package backoff paces the retries of ddi's reconnect loops: the SDK's
// watch, the sidecar's snapshot stream, the Kubernetes store's watch and the
// control plane's store sync. Each used to have its own copy; this is the
// one they share.
//
// It lives in the SDK module, not in the main module, because the SDK must
// never import the main module while the main module already requires the
// SDK; and it is a few lines of standard library rather than a third-party
// package because the SDK's base package promises to depend on the standard
// library only (see TestBaseDependencies in the SDK).
//
// The package must not grow beyond pacing: no retry loops, no error
// classification, no dependencies outside the standard library.
package backoff
