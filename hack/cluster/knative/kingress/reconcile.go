package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	netv1alpha1 "knative.dev/networking/pkg/apis/networking/v1alpha1"
	netclient "knative.dev/networking/pkg/client/clientset/versioned/typed/networking/v1alpha1"
	netlisters "knative.dev/networking/pkg/client/listers/networking/v1alpha1"
	"knative.dev/pkg/apis"
)

// reconciler rebuilds the routing table whenever an Ingress changes, then
// marks the Ingresses it now serves Ready.
type reconciler struct {
	log     *slog.Logger
	class   string
	lbIP    string
	client  netclient.NetworkingV1alpha1Interface
	lister  netlisters.IngressLister
	trigger chan struct{}
	table   atomic.Pointer[table]
}

func (r *reconciler) kick() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

func (r *reconciler) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.trigger:
		}
		if err := r.sync(ctx); err != nil {
			r.log.Warn("sync failed, retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				r.kick()
			}
		}
	}
}

func (r *reconciler) sync(ctx context.Context) error {
	all, err := r.lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list ingresses: %w", err)
	}
	var mine []*netv1alpha1.Ingress
	for _, ing := range all {
		if ing.DeletionTimestamp == nil && classOf(ing.Annotations) == r.class {
			mine = append(mine, ing)
		}
	}
	r.table.Store(buildTable(mine))
	r.log.Debug("routing table rebuilt", "ingresses", len(mine))

	lb := []netv1alpha1.LoadBalancerIngressStatus{{IP: r.lbIP}}
	var firstErr error
	for _, ing := range mine {
		want := ing.DeepCopy()
		want.Status.InitializeConditions()
		want.Status.MarkNetworkConfigured()
		want.Status.MarkLoadBalancerReady(lb, lb)
		want.Status.ObservedGeneration = ing.Generation
		if equality.Semantic.DeepEqual(ignoreTimes(want.Status), ignoreTimes(ing.Status)) {
			continue
		}
		if _, err := r.client.Ingresses(ing.Namespace).UpdateStatus(ctx, want, metav1.UpdateOptions{}); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("update status of %s/%s: %w", ing.Namespace, ing.Name, err)
			}
			continue
		}
		r.log.Info("ingress ready", "ingress", ing.Namespace+"/"+ing.Name, "generation", ing.Generation)
	}
	return firstErr
}

// ignoreTimes returns a copy of s whose condition times are zero, so that a
// status differing only in times is not written again.
func ignoreTimes(s netv1alpha1.IngressStatus) netv1alpha1.IngressStatus {
	s = *s.DeepCopy()
	for i := range s.Conditions {
		s.Conditions[i].LastTransitionTime = apis.VolatileTime{}
	}
	return s
}
