// Package watchhub fans a registry store's events out to its watchers: it
// registers the channel of each Watch call, delivers every event to each
// watcher once and in order, closes the channel of a watcher that falls
// behind, and closes channels when a watcher's context ends or the store
// closes them all.
//
// It keeps no history and does no I/O: each store keeps its own event log
// (bolt's persisted one, kube's in-memory one fed by one API watch),
// replays from it into Add, and calls Publish for every new event. The
// store serialises the two (see Hub), which is what makes delivery free of
// gaps and duplicates.
package watchhub
