package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"ddi.dev/ddi/internal/cli"
	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/sidecar"
)

// TestReplicasMergeSidecars runs two controller replicas against one API
// server, each with a real sidecar connected to it, and proves what
// docs/kubernetes.md says under "Replicas": GET /v1/graph and `ddi
// status` on either replica list the sidecars of both (the replicas find
// each other through the EndpointSlices of Service ddi-controller and
// present their service account's token for audience ddi-replicas); the
// replica route refuses a sidecar, a person and another service
// account's token of that audience with 403; and a stopped replica is
// reported as such by the other, within the replica timeout.
func TestReplicasMergeSidecars(t *testing.T) {
	cp, tokens := startReplicas(t)

	// A person who may see the graph (docs/kubernetes.md's
	// ddi-graph-viewer).
	cp.Namespace(t, "people", nil)
	create(t, cp, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "ddi-graph-viewer"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"ddi.dev"}, Resources: []string{"providers", "dependencysets"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
	}})
	create(t, cp, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "viewer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "ddi-graph-viewer"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "people", Name: "viewer"}}})
	waitAllowed(t, cp, "system:serviceaccount:people:viewer", authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"})
	viewer := personToken(t, cp, "viewer")

	// orders-1's sidecar on replica 0, billing-1's on replica 1.
	runSidecar(t, cp, 0, tokens["orders-1"], "orders")
	runSidecar(t, cp, 1, tokens["billing-1"], "billing")

	want := []string{
		"shop/billing " + kubetest.ReplicaIdentity(1) + " api->shop/api",
		"shop/orders " + kubetest.ReplicaIdentity(0) + " api->shop/api",
	}
	for i := range cp.StreamURLs {
		t.Run(fmt.Sprintf("GET /v1/graph on replica %d lists both replicas' sidecars", i), func(t *testing.T) {
			var g controlplane.Graph
			eventually(t, 20*time.Second, func() error {
				var err error
				if g, err = graphOn(t, cp, i, viewer); err != nil {
					return err
				}
				if got := graphRows(g); !slices.Equal(got, want) {
					return fmt.Errorf("functions = %q, want %q", got, want)
				}
				return nil
			})
			wantReplicas := []controlplane.ReplicaStatus{
				{Name: kubetest.ReplicaIdentity(i), Self: true, Sidecars: 1},
				{Name: kubetest.ReplicaIdentity(1 - i), Sidecars: 1},
			}
			if !slices.Equal(g.Replicas, wantReplicas) {
				t.Errorf("replicas = %+v, want %+v", g.Replicas, wantReplicas)
			}
		})
		t.Run(fmt.Sprintf("ddi status on replica %d lists both replicas' sidecars", i), func(t *testing.T) {
			out, err := statusOn(t, cp, i, viewer)
			if err != nil {
				t.Fatalf("ddi status: %v\n%s", err, out)
			}
			for _, w := range []string{"REPLICA", "shop/orders", "shop/billing", kubetest.ReplicaIdentity(0), kubetest.ReplicaIdentity(1)} {
				if !strings.Contains(out, w) {
					t.Errorf("ddi status printed\n%s\nwant %q in it", out, w)
				}
			}
		})
	}

	t.Run("only the controller's replicas may call the replica route", func(t *testing.T) {
		other := tokenFor(t, cp, kubetest.SystemNamespace, "default", controller.DefaultReplicaAudience)
		replicaToken, err := os.ReadFile(cp.ReplicaTokens[1])
		if err != nil {
			t.Fatal(err)
		}
		podTok, err := os.ReadFile(tokens["orders-1"])
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name, token string
			code        int
		}{
			{"another service account's token for audience ddi-replicas", other, 403},
			{"a sidecar's pod token", string(podTok), 403},
			{"a person allowed to see the graph", viewer, 403},
			{"no token that the API server knows", "not-a-token", 401},
			{"the controller's service account", string(replicaToken), 200},
		} {
			code, body := getOn(t, cp, 0, controlplane.ReplicaPath, tt.token)
			if code != tt.code {
				t.Errorf("GET %s with %s = %d %s, want %d", controlplane.ReplicaPath, tt.name, code, body, tt.code)
			}
			if tt.code == 200 && (!strings.Contains(body, `"replica":"`+kubetest.ReplicaIdentity(0)+`"`) || strings.Contains(body, "billing")) {
				t.Errorf("GET %s as a replica = %s, want replica 0's own sidecars only", controlplane.ReplicaPath, body)
			}
		}
	})

	t.Run("a stopped replica is reported, not waited for", func(t *testing.T) {
		cp.StopReplica(t, 1)
		start := time.Now()
		g, err := graphOn(t, cp, 0, viewer)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		// Generous, for a loaded machine: the point is that the stopped
		// replica is not waited for.
		if took > 5*controller.DefaultReplicaTimeout {
			t.Errorf("GET /v1/graph with replica 1 stopped took %s: it waited on the stopped replica (timeout %s)", took, controller.DefaultReplicaTimeout)
		}
		if got, w := graphRows(g), want[1:]; !slices.Equal(got, w) {
			t.Errorf("functions with replica 1 stopped = %q, want %q", got, w)
		}
		if len(g.Replicas) != 2 || g.Replicas[1].Name != kubetest.ReplicaIdentity(1) || g.Replicas[1].Error == "" {
			t.Fatalf("replicas with replica 1 stopped = %+v, want replica 1 with an error", g.Replicas)
		}
		t.Logf("replica 1 stopped: answered in %s, replica 1 reported as %q", took.Round(time.Millisecond), g.Replicas[1].Error)
		out, err := statusOn(t, cp, 0, viewer)
		if err != nil || !strings.Contains(out, "controller replica "+kubetest.ReplicaIdentity(1)+" did not answer") {
			t.Errorf("ddi status with replica 1 stopped = %v\n%s\nwant a warning naming replica 1", err, out)
		}
	})
}

// runSidecar runs a real sidecar for a pod of function name, connected to
// replica i, until the test ends.
func runSidecar(t *testing.T, cp *kubetest.ControlPlane, i int, tokenFile, name string) {
	t.Helper()
	sc, err := sidecar.New(sidecar.Config{ControlPlane: cp.StreamURLs[i], CA: cp.StreamCA, TokenFile: tokenFile,
		Consumer: registry.Consumer{Name: name}, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
}

// getOn sends GET path to replica i with a bearer token.
func getOn(t *testing.T, cp *kubetest.ControlPlane, i int, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", cp.StreamURLs[i]+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := cp.StreamHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// graphOn is GET /v1/graph on replica i as the person with token.
func graphOn(t *testing.T, cp *kubetest.ControlPlane, i int, token string) (controlplane.Graph, error) {
	t.Helper()
	code, body := getOn(t, cp, i, "/v1/graph", token)
	var g controlplane.Graph
	if code != 200 {
		return g, fmt.Errorf("GET /v1/graph on replica %d = %d %s", i, code, body)
	}
	return g, json.Unmarshal([]byte(body), &g)
}

// graphRows says each function of g as "namespace/name replicas
// alias->provider...", sorted.
func graphRows(g controlplane.Graph) []string {
	var out []string
	for _, f := range g.Functions {
		var reps, deps []string
		for _, s := range f.Sidecars {
			reps = append(reps, s.Replica)
		}
		for _, d := range f.Dependencies {
			deps = append(deps, d.Alias+"->"+d.Provider)
		}
		out = append(out, registry.Key(f.Namespace, f.Name)+" "+strings.Join(reps, ",")+" "+strings.Join(deps, ","))
	}
	slices.Sort(out)
	return out
}

// statusOn runs `ddi status` as a person with token against replica i
// (as after a port-forward to that replica's pod).
func statusOn(t *testing.T, cp *kubetest.ControlPlane, i int, token string) (string, error) {
	t.Helper()
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, cp.StreamCA, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	err := cli.Run(t.Context(), []string{"--kubeconfig", kubeconfigFor(t, cp, "viewer", token), "--control-plane", cp.StreamURLs[i],
		"--control-plane-ca", caFile, "status"}, &out, &errOut)
	return out.String() + errOut.String(), err
}

// tokenFor is a token of service account ns/name for audience.
func tokenFor(t *testing.T, cp *kubetest.ControlPlane, ns, name, audience string) string {
	t.Helper()
	tr, err := cp.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of %s/%s for %s: %v", ns, name, audience, err)
	}
	return tr.Status.Token
}
