package controller

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaseLock returns the lock on Lease LeaseName that leader election holds
// as o.LeaderElectionIdentity. It returns nil, leaving the lock to
// controller-runtime (identity: host name and a random suffix; it also
// records "became leader" Events on the Lease), when the identity is
// empty or leader election is off.
func leaseLock(cfg *rest.Config, o Options) (resourcelock.Interface, error) {
	if !o.LeaderElection || o.LeaderElectionIdentity == "" {
		return nil, nil
	}
	// As controller-runtime does: one hung request must not cost the
	// leader its Lease.
	c := rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	c.Timeout = max(o.RenewDeadline/2, time.Second)
	cs, err := coordinationv1client.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	return &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: o.Namespace, Name: LeaseName},
		Client:     cs,
		LockConfig: resourcelock.ResourceLockConfig{Identity: o.LeaderElectionIdentity},
	}, nil
}
