package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// pollSecrets reads, every s.secretPoll, the secret material of every
// provider that references it, and hands the keys of providers whose
// material changed to the publishing goroutine. Only a digest of the
// material is kept. A provider seen for the first time counts as changed:
// its secret may have changed between a stream's read and this one, and a
// stream whose snapshot did not change sends nothing.
//
// Reads are bounded to s.secretReads per second: a round that reads more
// secrets than that in one period takes longer, and the next round starts
// one period after it began or when it ends, whichever is later.
func (s *Server) pollSecrets(ctx context.Context) {
	seen := map[string][32]byte{}
	lim := rate.NewLimiter(rate.Limit(s.secretReads), 1)
	t := time.NewTicker(s.secretPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v := s.current.Load()
		var changed []string
		next := make(map[string][32]byte, len(seen))
		for _, p := range v.all {
			if p.SecretRef == nil || len(p.Secret) > 0 {
				continue
			}
			if lim.Wait(ctx) != nil {
				return
			}
			data, err := s.secrets.Secret(ctx, p)
			if err != nil {
				// Streams report an unreadable secret themselves; keep the
				// old digest so that recovery counts as a change.
				if d, ok := seen[p.Key()]; ok {
					next[p.Key()] = d
				}
				continue
			}
			d := digest(data)
			if old, ok := seen[p.Key()]; !ok || old != d {
				changed = append(changed, p.Key())
			}
			next[p.Key()] = d
		}
		seen = next
		if len(changed) == 0 {
			continue
		}
		s.metrics.secretChanges.Add(float64(len(changed)))
		s.log.Info("referenced secrets changed; pushing them", "providers", changed)
		select {
		case s.touch <- changed:
		case <-ctx.Done():
			return
		}
	}
}

// digest hashes a secret's keys and values unambiguously.
func digest(m map[string]string) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, k := range slices.Sorted(maps.Keys(m)) {
		for _, s := range []string{k, m[k]} {
			binary.BigEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
