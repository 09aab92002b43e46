package controller_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	ddiclient "ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/protocol"
)

// The tests of this file run two controller replicas against one API
// server, as deploy/ does, and prove what docs/kubernetes.md says under
// "High availability": every replica serves its own sidecars' streams and
// keeps them current, one leader runs the reconcilers, and either replica
// may go.

// TestReplicasServeSidecars checks, with two replicas: that a stream on
// the replica that does not lead ends when a DependencySet of its
// namespace is created or changed, and that the sidecar reconnecting to
// that replica gets the new dependencies; that both replicas push a
// Provider change to their streams; and that stopping the replica that
// does not lead leaves the leader and its streams alone.
func TestReplicasServeSidecars(t *testing.T) {
	cp, tokens := startReplicas(t)
	ctx := t.Context()
	leader := waitLeader(t, cp)
	other := 1 - leader
	t.Logf("replica %d leads", leader)

	t.Run("a stream on the non-leader follows DependencySet changes", func(t *testing.T) {
		s := openStream(t, cp, other, tokens["orders-1"], "orders-a")
		if got := bindingNames(s.first); got != "api" {
			t.Fatalf("bindings on replica %d before any DependencySet = %s, want api", other, got)
		}
		create(t, cp, &v1alpha1.DependencySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"}, Spec: v1alpha1.DependencySetSpec{
			Selector:     metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "orders"}},
			Dependencies: []v1alpha1.Dependency{{Alias: "primary", Provider: &v1alpha1.ProviderReference{Name: "db"}}},
		}})
		s.waitEnd(t, 20*time.Second, fmt.Sprintf("replica %d (not the leader), after DependencySet %s/orders was created", other, ns))
		s = openStream(t, cp, other, tokens["orders-1"], "orders-a")
		if got := bindingNames(s.first); got != "api,primary" {
			t.Fatalf("bindings on reconnecting to replica %d after the DependencySet was created = %s, want api,primary", other, got)
		}

		// The controller writes the object's status meanwhile: retry a
		// conflicting update on a fresh read.
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var ds v1alpha1.DependencySet
			if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders"}, &ds); err != nil {
				return err
			}
			ds.Spec.Dependencies[0].Alias = "main"
			return cp.Client.Update(ctx, &ds)
		}); err != nil {
			t.Fatal(err)
		}
		s.waitEnd(t, 20*time.Second, fmt.Sprintf("replica %d (not the leader), after DependencySet %s/orders changed", other, ns))
		s = openStream(t, cp, other, tokens["orders-1"], "orders-a")
		if got := bindingNames(s.first); got != "api,main" {
			t.Errorf("bindings on reconnecting to replica %d after the DependencySet changed = %s, want api,main", other, got)
		}
	})

	t.Run("both replicas push a Provider change", func(t *testing.T) {
		var streams []*haStream
		for i := range cp.StreamURLs {
			s := openStream(t, cp, i, tokens["billing-1"], fmt.Sprintf("billing-b%d", i))
			if got := motd(s.first); got != "one" {
				t.Fatalf("motd of api on replica %d = %q, want %q", i, got, "one")
			}
			streams = append(streams, s)
		}
		setMotd(t, cp, "two")
		for i, s := range streams {
			s.waitSnapshot(t, 20*time.Second, fmt.Sprintf("replica %d: motd two", i), func(m protocol.Message) bool { return motd(m) == "two" })
		}
		for i := range cp.StreamURLs {
			if got := motd(openStream(t, cp, i, tokens["billing-1"], fmt.Sprintf("billing-b%d-new", i)).first); got != "two" {
				t.Errorf("motd of api on a new stream to replica %d = %q, want %q", i, got, "two")
			}
		}
	})

	t.Run("stopping the non-leader leaves the leader's streams alone", func(t *testing.T) {
		s := openStream(t, cp, leader, tokens["billing-1"], "billing-d")
		cp.StopReplica(t, other)
		// The stream outlived the stop if it carries the next change.
		setMotd(t, cp, "three")
		s.waitSnapshot(t, 20*time.Second, fmt.Sprintf("replica %d (the leader) after replica %d stopped: motd three", leader, other),
			func(m protocol.Message) bool { return motd(m) == "three" })
		if got := cp.Leader(t); got != leader {
			t.Errorf("Leader() = %d after replica %d stopped, want %d", got, other, leader)
		}
		if got := motd(openStream(t, cp, leader, tokens["billing-1"], "billing-d-new").first); got != "three" {
			t.Errorf("motd of api on a new stream to replica %d = %q, want %q", leader, got, "three")
		}
	})
}

// TestLeaderFailover stops the leader of two replicas: the stream on the
// other replica keeps carrying changes; until the stopped leader's Lease
// runs out nobody reconciles, then the other replica takes the Lease and
// runs the reconcilers (a DependencySet created after the stop gets its
// status from it alone), and its follower ends its streams for that
// DependencySet.
func TestLeaderFailover(t *testing.T) {
	cp, tokens := startReplicas(t)
	ctx := t.Context()
	leader := waitLeader(t, cp)
	survivor := 1 - leader

	s := openStream(t, cp, survivor, tokens["orders-1"], "orders-c")
	cp.StopReplica(t, leader)
	stopped := time.Now()

	setMotd(t, cp, "two")
	s.waitSnapshot(t, 20*time.Second, fmt.Sprintf("replica %d after the leader (replica %d) stopped: motd two", survivor, leader),
		func(m protocol.Message) bool { return motd(m) == "two" })

	create(t, cp, &v1alpha1.DependencySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"}, Spec: v1alpha1.DependencySetSpec{
		Selector:     metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "orders"}},
		Dependencies: []v1alpha1.Dependency{{Alias: "primary", Provider: &v1alpha1.ProviderReference{Name: "db"}}},
	}})
	var tookOver time.Time
	eventually(t, 30*time.Second, func() error {
		// The status first, then the Lease: a status written before the
		// survivor holds the Lease was written by a replica that does
		// not lead.
		var ds v1alpha1.DependencySet
		if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders"}, &ds); err != nil {
			return err
		}
		written := ds.Status.ObservedGeneration == ds.Generation
		l := cp.Leader(t)
		if written && l != survivor {
			t.Fatalf("DependencySet %s/orders got its status while Leader() = %d: a replica that does not lead reconciled it", ns, l)
		}
		if l != survivor {
			return fmt.Errorf("Leader() = %d, want %d", l, survivor)
		}
		if tookOver.IsZero() {
			tookOver = time.Now()
		}
		if !written || ds.Status.ResolvedCount != 1 {
			return fmt.Errorf("status = %+v, want generation %d observed and 1 resolved", ds.Status, ds.Generation)
		}
		return nil
	})
	t.Logf("replica %d took the Lease %s after replica %d stopped", survivor, tookOver.Sub(stopped).Round(100*time.Millisecond), leader)

	s.waitEnd(t, 20*time.Second, fmt.Sprintf("replica %d, after DependencySet %s/orders was created", survivor, ns))
	if got := bindingNames(openStream(t, cp, survivor, tokens["orders-1"], "orders-c").first); got != "api,primary" {
		t.Errorf("bindings on reconnecting to replica %d = %s, want api,primary", survivor, got)
	}
}

// startReplicas runs two controller replicas and, in namespace shop,
// Providers api (http, config motd "one") and db, and pods orders-1 and
// billing-1 that depend on api. It returns the pods' token files by pod
// name once every replica binds api. The Providers exist before the
// replicas start (each lists them, so a later change reaches a replica
// only through its own watch); the pods are created right away: after
// replica 0 stops, the API server cannot call the webhook.
func startReplicas(t *testing.T) (*kubetest.ControlPlane, map[string]string) {
	t.Helper()
	cp := kubetest.RunControlPlane(t, kubetest.Options{Replicas: 2, Setup: func(cp *kubetest.ControlPlane) {
		cp.Namespace(t, ns, nil)
		cp.ServiceAccount(t, ns, "fn")
		create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}, Spec: v1alpha1.ProviderSpec{
			Type: "http", Version: "1.0.0", Endpoints: []v1alpha1.Endpoint{{URL: "http://10.1.2.3:80", Ready: true}},
			Config: map[string]string{"motd": "one"},
		}})
		create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: v1alpha1.ProviderSpec{
			Type: "postgresql", Version: "15.4.0", Endpoints: []v1alpha1.Endpoint{{URL: "postgresql://10.1.2.4:5432", Ready: true}},
		}})
	}})
	tokens := map[string]string{}
	for _, p := range []*corev1.Pod{pod("orders-1", "orders", "api=http@^1"), pod("billing-1", "billing", "api=http@^1")} {
		create(t, cp, p)
		tokens[p.Name] = podToken(t, cp, p)
	}
	// Each replica's store lists the Providers on its own.
	for i := range cp.StreamURLs {
		eventually(t, 20*time.Second, func() error {
			m, err := firstMessageOn(t, cp, i, tokens["billing-1"])
			if err != nil {
				return err
			}
			if got := bindingNames(*m); got != "api" {
				return fmt.Errorf("replica %d binds %q, want api", i, got)
			}
			return nil
		})
	}
	return cp, tokens
}

// waitLeader waits until a replica holds the leader election Lease.
func waitLeader(t *testing.T, cp *kubetest.ControlPlane) int {
	t.Helper()
	leader := -1
	eventually(t, 30*time.Second, func() error {
		if leader = cp.Leader(t); leader < 0 {
			return errors.New("no replica holds the Lease")
		}
		return nil
	})
	return leader
}

// firstMessageOn opens a stream on replica i and returns its first
// message, or the error that refused the stream.
func firstMessageOn(t *testing.T, cp *kubetest.ControlPlane, i int, tokenFile string) (*protocol.Message, error) {
	t.Helper()
	c := &ddiclient.Client{BaseURL: cp.StreamURLs[i], HTTP: cp.StreamHTTP(t), TokenFile: tokenFile}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := c.Stream(ctx, protocol.Hello{SidecarID: fmt.Sprintf("probe-%d", i)})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	m, err := s.Recv()
	return &m, err
}

// haStream is a sidecar stream open on one replica, read in the background
// until it ends or the test does.
type haStream struct {
	first protocol.Message
	// snapshots carries the snapshots after the first; it is closed when
	// the stream ends.
	snapshots chan protocol.Message
}

// openStream opens a stream on replica i with the pod token in tokenFile
// and waits for its first snapshot.
func openStream(t *testing.T, cp *kubetest.ControlPlane, i int, tokenFile, sidecarID string) *haStream {
	t.Helper()
	ctx := t.Context()
	c := &ddiclient.Client{BaseURL: cp.StreamURLs[i], HTTP: cp.StreamHTTP(t), TokenFile: tokenFile}
	s, err := c.Stream(ctx, protocol.Hello{SidecarID: sidecarID})
	if err != nil {
		t.Fatalf("open a stream on replica %d: %v", i, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	first, err := s.Recv()
	if err != nil || first.Type != protocol.TypeSnapshot {
		t.Fatalf("first message on replica %d = %+v, %v; want a snapshot", i, first, err)
	}
	hs := &haStream{first: first, snapshots: make(chan protocol.Message)}
	go func() {
		defer close(hs.snapshots)
		for {
			m, err := s.Recv()
			if err != nil {
				return
			}
			if m.Type != protocol.TypeSnapshot {
				continue
			}
			select {
			case hs.snapshots <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return hs
}

// waitEnd waits until the stream ends, and fails the test when it is still
// open after d.
func (s *haStream) waitEnd(t *testing.T, d time.Duration, what string) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case _, open := <-s.snapshots:
			if !open {
				return
			}
		case <-timeout:
			t.Fatalf("%s: the stream is still open %s later, want it ended", what, d)
		}
	}
}

// waitSnapshot waits for a snapshot that ok accepts, and fails the test
// when the stream ends first or none comes within d.
func (s *haStream) waitSnapshot(t *testing.T, d time.Duration, what string, ok func(protocol.Message) bool) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m, open := <-s.snapshots:
			if !open {
				t.Fatalf("%s: the stream ended, want it open", what)
			}
			if ok(m) {
				return
			}
		case <-timeout:
			t.Fatalf("%s: no such snapshot within %s", what, d)
		}
	}
}

// setMotd sets Provider shop/api's config motd.
func setMotd(t *testing.T, cp *kubetest.ControlPlane, v string) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p v1alpha1.Provider
		if err := cp.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "api"}, &p); err != nil {
			return err
		}
		p.Spec.Config["motd"] = v
		return cp.Client.Update(t.Context(), &p)
	}); err != nil {
		t.Fatal(err)
	}
}

// bindingNames lists a snapshot's binding names, sorted and joined by
// commas.
func bindingNames(m protocol.Message) string {
	var names []string
	for _, b := range m.Bindings {
		names = append(names, b.Name)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// motd is the config motd of a snapshot's binding api.
func motd(m protocol.Message) string {
	for _, b := range m.Bindings {
		if b.Name == "api" {
			return b.Config["motd"]
		}
	}
	return ""
}
