package kube

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/registrytest"
)

// partitionLabel separates the stores of one test run: each store sees
// only the Providers it created.
const partitionLabel = "ddi.dev/test-store"

var storeSeq atomic.Int64

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("DDI_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// newTestStore returns a store in its own partition of the test cluster,
// in the suite's namespaces. When the test ends it closes the store and
// deletes the partition's Providers, so that the next test can use the
// same names.
func newTestStore(t *testing.T, opts Options) *Store {
	t.Helper()
	c := cluster(t)
	for _, ns := range append(registrytest.Namespaces(), DefaultSecretNamespace) {
		ensureNamespace(t, c, ns)
	}
	if opts.Labels == nil {
		opts.Labels = map[string]string{partitionLabel: fmt.Sprintf("s%d", storeSeq.Add(1))}
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := New(t.Context(), c, opts)
	if err != nil {
		t.Fatalf("New() error = %v, want nil", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() error = %v", err)
		}
		deletePartition(t, c, opts.Labels)
	})
	return s
}

// deletePartition deletes the Providers carrying labels and waits until
// they are gone.
func deletePartition(t *testing.T, c client.WithWatch, labels map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ns := range registrytest.Namespaces() {
		if err := c.DeleteAllOf(ctx, &v1alpha1.Provider{}, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
			t.Errorf("delete the test's providers in %s: %v", ns, err)
		}
	}
	for ctx.Err() == nil {
		var list v1alpha1.ProviderList
		if err := c.List(ctx, &list, client.MatchingLabels(labels)); err == nil && len(list.Items) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the test's providers (%v) were not deleted within 30s", labels)
}

// TestConformance runs the registry conformance suite against the store
// on a real API server.
func TestConformance(t *testing.T) {
	registrytest.Run(t,
		func(t *testing.T) registry.Store { return newTestStore(t, Options{}) },
		registrytest.WithReopen(func(t *testing.T, closed registry.Store) registry.Store {
			s, err := New(t.Context(), cluster(t), closed.(*Store).opts)
			if err != nil {
				t.Fatalf("New() again error = %v, want nil", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}),
		registrytest.WithLeaseGrace(2*time.Second),
	)
}
