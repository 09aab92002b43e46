package kube

import (
	"context"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
)

// sweep deletes expired run-time registrations every SweepInterval until
// ctx ends.
func (s *Store) sweep(ctx context.Context) {
	tick := time.NewTicker(s.opts.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.expire(ctx)
		}
	}
}

// expire deletes every provider whose lease has passed, as the lease index
// (fed by the watch) knows it. Each delete has the resourceVersion the
// index saw as a precondition, so a renewal that the index has not seen
// yet wins: the delete fails with a conflict and the provider stays. The
// watch then records the Delete event.
func (s *Store) expire(ctx context.Context) {
	now := s.opts.Now()
	type due struct {
		key string
		rev int64
	}
	var expired []due
	s.mu.Lock()
	for key, l := range s.leases {
		if !l.expires.After(now) {
			expired = append(expired, due{key, l.revision})
		}
	}
	s.mu.Unlock()
	for _, d := range expired {
		ns, name, _ := strings.Cut(d.key, "/")
		rv := strconv.FormatInt(d.rev, 10)
		obj := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		err := s.c.Delete(ctx, obj, &client.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
		switch {
		case err == nil:
			s.log.Info("lease expired; provider deleted", "provider", d.key, "revision", d.rev)
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Deleted or renewed meanwhile; the watch will tell.
		case ctx.Err() != nil:
			return
		default:
			s.log.Error("delete a provider whose lease expired", "provider", d.key, "err", err)
			continue
		}
		s.mu.Lock()
		if l, ok := s.leases[d.key]; ok && l.revision == d.rev {
			delete(s.leases, d.key)
		}
		s.mu.Unlock()
	}
}
