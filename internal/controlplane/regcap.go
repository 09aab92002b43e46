package controlplane

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/registry"
)

// MaxRegistrationsPerOwner bounds the run-time registrations (providers
// with an owner) one owner may hold: a pod on Kubernetes, where the
// Authenticator sets the owner, a function's sidecar locally. The sidecar
// has the same bound (sidecar.MaxRegistrations); this one also holds for a
// caller that skips its sidecar and talks to the control plane with its
// pod's token.
const MaxRegistrationsPerOwner = 64

// pendingTTL is how long a granted registration counts against its owner
// before the index shows it (the store's watch delivers it within
// milliseconds normally). A write that failed after the check counts that
// long too.
const pendingTTL = 10 * time.Second

// regCap enforces MaxRegistrationsPerOwner. The index trails the store by
// the watch's delay, and a caller may send many registrations at once, so
// counting the index alone would let them all pass: the check also counts
// registrations it granted that the index does not show yet, under one
// lock. Its zero value is ready.
type regCap struct {
	mu      sync.Mutex
	pending map[string]map[string]time.Time // owner -> provider key -> granted at
}

// admitRegistration refuses p, with a 409 problem naming the bound and the
// fix, when it is a new run-time registration (an owner is set) whose owner
// already holds MaxRegistrationsPerOwner. Replacing one of the owner's own
// providers always passes; providers without an owner are not bounded.
func (s *Server) admitRegistration(p *registry.Provider) *httpapi.Problem {
	if p.Owner == "" {
		return nil
	}
	key := p.Key()
	c := &s.regCap
	c.mu.Lock()
	defer c.mu.Unlock()
	// The view is read under the lock: one read before it could miss a
	// registration whose pending entry a newer view already cleared.
	v := s.current.Load()
	if cur, ok := v.byKey[key]; ok && cur.Owner == p.Owner {
		return nil
	}
	held := make(map[string]bool)
	for _, q := range v.all {
		if q.Owner == p.Owner {
			held[q.Key()] = true
		}
	}
	now := time.Now()
	for owner, keys := range c.pending {
		for k, at := range keys {
			if now.Sub(at) > pendingTTL || (owner == p.Owner && held[k]) {
				delete(keys, k) // indexed by now, or never stored
			} else if owner == p.Owner {
				held[k] = true
			}
		}
		if len(keys) == 0 {
			delete(c.pending, owner)
		}
	}
	if held[key] {
		return nil // granted before and not indexed yet: a replacement
	}
	if len(held) >= MaxRegistrationsPerOwner {
		return httpapi.NewProblem(http.StatusConflict, "too-many-registrations", fmt.Sprintf(
			"%s already holds %d run-time registrations, the most the control plane allows one owner (%d): delete one (DELETE /v1/providers/NAMESPACE/NAME, or through the sidecar) or let its lease end before registering %s",
			p.Owner, len(held), MaxRegistrationsPerOwner, key))
	}
	if c.pending == nil {
		c.pending = make(map[string]map[string]time.Time)
	}
	if c.pending[p.Owner] == nil {
		c.pending[p.Owner] = make(map[string]time.Time)
	}
	c.pending[p.Owner][key] = now
	return nil
}
