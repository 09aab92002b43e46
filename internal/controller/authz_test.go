package controller_test

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	ddiclient "ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// TestControlPlaneAuthorisesByPod drives the control plane API for sidecars
// with the tokens of two pods in two namespaces: each reads only its own
// namespace, resolves only for itself, sees and acknowledges only its own
// streams, cannot end another pod's stream by reusing its sidecar id, and a
// stream ends when its pod is deleted.
func TestControlPlaneAuthorisesByPod(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{Controller: func(o *controller.Options) { o.StreamRecheck = 300 * time.Millisecond }})
	ctx := t.Context()
	const other = "rival"
	for _, n := range []string{ns, other} {
		cp.Namespace(t, n, nil)
		cp.ServiceAccount(t, n, "fn")
	}
	for _, n := range []string{ns, other} {
		create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: "api"}, Spec: v1alpha1.ProviderSpec{
			Type: "http", Version: "1.0.0", Endpoints: []v1alpha1.Endpoint{{URL: "http://10.1.2.3:80", Ready: true}},
		}})
	}
	orders := pod("orders-1", "orders", "api=http@^1")
	rival := pod("rival-1", "rival", "api=http@^1")
	rival.Namespace = other
	for _, p := range []*corev1.Pod{orders, rival} {
		create(t, cp, p)
	}
	as := func(p *corev1.Pod) *ddiclient.Client {
		return &ddiclient.Client{BaseURL: cp.StreamURL, HTTP: cp.StreamHTTP(t), TokenFile: podToken(t, cp, p)}
	}
	oc, rc := as(orders), as(rival)
	status := func(err error) int {
		var pe *httpapi.Problem
		if errors.As(err, &pe) {
			return pe.Status
		}
		return 0
	}
	// The index lists the Providers asynchronously.
	eventually(t, 20*time.Second, func() error {
		_, err := oc.Resolve(ctx, registry.Consumer{}, "api=http@^1")
		return err
	})

	t.Run("a pod lists only its own namespace", func(t *testing.T) {
		list, err := oc.ListProviders(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Providers {
			if p.Namespace != ns {
				t.Errorf("pod %s/%s listed provider %s/%s", ns, orders.Name, p.Namespace, p.Name)
			}
		}
		if len(list.Providers) != 1 {
			t.Errorf("list = %d providers, want shop/api only", len(list.Providers))
		}
		if _, err := oc.ListProviders(ctx, other); status(err) != http.StatusForbidden {
			t.Errorf("list namespace %s = %v, want 403", other, err)
		}
		if _, err := oc.GetProvider(ctx, other, "api"); status(err) != http.StatusForbidden {
			t.Errorf("get %s/api = %v, want 403", other, err)
		}
		if _, err := oc.GetProvider(ctx, ns, "api"); err != nil {
			t.Errorf("get own %s/api = %v, want it", ns, err)
		}
	})

	t.Run("a pod resolves only for itself", func(t *testing.T) {
		if _, err := oc.Resolve(ctx, registry.Consumer{Namespace: other, Name: "rival"}, "api=http@^1"); status(err) != http.StatusForbidden {
			t.Errorf("resolve for %s/rival = %v, want 403", other, err)
		}
		b, err := oc.Resolve(ctx, registry.Consumer{}, "api=http@^1")
		if err != nil || b.Namespace != ns {
			t.Errorf("resolve for itself = %+v, %v; want %s/api", b, err, ns)
		}
	})

	t.Run("a pod cannot take over or acknowledge another pod's stream", func(t *testing.T) {
		victim, err := rc.Stream(ctx, protocol.Hello{SidecarID: "shared-id"})
		if err != nil {
			t.Fatal(err)
		}
		defer victim.Close()
		first, err := victim.Recv()
		if err != nil {
			t.Fatal(err)
		}
		// The attacker opens a stream under the victim's sidecar id.
		mine, err := oc.Stream(ctx, protocol.Hello{SidecarID: "shared-id"})
		if err != nil {
			t.Fatal(err)
		}
		defer mine.Close()
		if _, err := mine.Recv(); err != nil {
			t.Fatal(err)
		}
		// Acknowledging for the victim, even with its stream token, is refused.
		if err := oc.Ack(ctx, protocol.Ack{SidecarID: "shared-id", Stream: first.Stream, Version: first.Version, Hash: first.Hash}); status(err) != http.StatusNotFound {
			t.Errorf("ack of the victim's stream by another pod = %v, want 404", err)
		}
		if err := rc.Ack(ctx, protocol.Ack{SidecarID: "shared-id", Stream: first.Stream, Version: first.Version, Hash: first.Hash}); err != nil {
			t.Errorf("the victim's own ack = %v, want it accepted", err)
		}
		sidecars, err := oc.Sidecars(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, sc := range sidecars {
			if sc.Consumer.Namespace != ns {
				t.Errorf("pod %s sees sidecar %s of %s/%s", orders.Name, sc.ID, sc.Consumer.Namespace, sc.Consumer.Name)
			}
		}
		// The victim's stream is still open: its next message is a
		// heartbeat or a snapshot, not the end.
		got := make(chan error, 1)
		go func() { _, err := victim.Recv(); got <- err }()
		select {
		case err := <-got:
			t.Errorf("the victim's stream ended after another pod used its sidecar id: %v", err)
		case <-time.After(time.Second):
		}
	})

	t.Run("a stream ends when its pod is deleted", func(t *testing.T) {
		gone := pod("gone-1", "orders", "api=http@^1")
		create(t, cp, gone)
		s, err := as(gone).Stream(ctx, protocol.Hello{SidecarID: "gone"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		if err := cp.Client.Delete(ctx, gone, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		ended := make(chan error, 1)
		go func() {
			for {
				if _, err := s.Recv(); err != nil {
					ended <- err
					return
				}
			}
		}()
		select {
		case err := <-ended:
			if !errors.Is(err, io.EOF) {
				t.Logf("stream ended with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the stream of a deleted pod is still open 15s later (recheck every 300ms)")
		}
	})
}
