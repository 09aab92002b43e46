package controlplane_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/registry"
)

// countingSecrets is a SecretSource that counts its reads.
type countingSecrets struct{ reads atomic.Int64 }

func (c *countingSecrets) Secret(context.Context, *registry.Provider) (map[string]string, error) {
	c.reads.Add(1)
	return map[string]string{"token": "t"}, nil
}

// TestSecretReadsAreBounded checks that the secret poll reads no more than
// SecretReads secrets a second, however many providers reference one and
// however short the poll period: 40 providers polled every 10 ms at 20
// reads a second may read at most 20 a second (plus the one of the burst).
// Only the upper bound is asserted: a slow machine reads fewer.
func TestSecretReadsAreBounded(t *testing.T) {
	src := &countingSecrets{}
	store, _ := startServer(t, func(o *controlplane.Options) {
		o.Secrets = src
		o.SecretPoll = 10 * time.Millisecond
		o.SecretReads = 20
	})
	for i := range 40 {
		p := registry.Provider{Namespace: "team-a", Name: fmt.Sprintf("p%d", i), Type: "http",
			Endpoints: []registry.Endpoint{{URL: "http://p.team-a:80", Ready: true}},
			SecretRef: &registry.SecretRef{Name: "s"}}
		if _, err := store.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for src.reads.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the poll read no secret in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start, before := time.Now(), src.reads.Load()
	time.Sleep(1500 * time.Millisecond)
	reads, took := src.reads.Load()-before, time.Since(start)
	if limit := int64(took.Seconds()*20) + 2; reads > limit {
		t.Errorf("%d secret reads in %v at SecretReads=20, want at most %d", reads, took, limit)
	}
	if reads == 0 {
		t.Error("no secret read in 1.5 s: the poll stopped")
	}
}
