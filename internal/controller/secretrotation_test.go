package controller_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/sidecar"
)

// TestSecretRotationReachesFiles changes a Secret that a Provider's
// secretRef names, and nothing else, and measures how long the new
// password takes to reach the binding files of a running sidecar (the same
// snapshot feeds its HTTP API and the SDK's typed clients).
func TestSecretRotationReachesFiles(t *testing.T) {
	const poll = 500 * time.Millisecond
	cp := kubetest.RunControlPlane(t, kubetest.Options{Controller: func(o *controller.Options) { o.SecretPoll = poll }})
	ctx := t.Context()
	cp.Namespace(t, ns, nil)
	cp.ServiceAccount(t, ns, "fn")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-creds"},
		Data: map[string][]byte{"username": []byte("orders"), "password": []byte("first")}}
	create(t, cp, sec)
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "15.4.0",
		Endpoints: []v1alpha1.Endpoint{{URL: "postgresql://10.1.2.3:5432/app", Ready: true}},
		SecretRef: &v1alpha1.SecretReference{Name: "db-creds"},
	}})
	orders := pod("orders-1", "orders", "db=db")
	create(t, cp, orders)

	root := t.TempDir()
	sc, err := sidecar.New(sidecar.Config{ControlPlane: cp.StreamURL, CA: cp.StreamCA, TokenFile: podToken(t, cp, orders), BindingRoot: root,
		Consumer: registry.Consumer{Name: "orders"}},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sc.Serve(sctx, ln) }()
	defer func() { cancel(); <-done }()

	password := filepath.Join(root, "db", "password")
	waitFile := func(want string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			if b, err := os.ReadFile(password); err == nil && string(b) == want {
				return time.Since(start)
			}
			if time.Since(start) > within {
				b, err := os.ReadFile(password)
				t.Fatalf("%s = %q, %v after %s; want %q", password, b, err, within, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFile("first", 20*time.Second)

	var took []time.Duration
	for i, pw := range []string{"second", "third", "fourth"} {
		sec.Data["password"] = []byte(pw)
		if err := cp.Client.Update(ctx, sec); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		took = append(took, waitFile(pw, 10*poll+5*time.Second))
	}
	// The figure the docs quote: from the Secret update to the new file,
	// at most one poll interval plus the push.
	t.Logf("secret rotation to binding files (poll %s): %v", poll, took)
}
