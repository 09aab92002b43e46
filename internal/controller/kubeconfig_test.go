package controller_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/cli"
	"ddi.dev/ddi/internal/kubetest"
)

// personToken is what `kubectl create token NAME` gives: a token of the
// service account people/NAME for the API server's own audience, which a
// kubeconfig presents as its user's bearer token.
func personToken(t *testing.T, cp *kubetest.ControlPlane, name string) string {
	t.Helper()
	cp.ServiceAccount(t, "people", name)
	tr, err := cp.Clientset.CoreV1().ServiceAccounts("people").CreateToken(t.Context(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s: %v", name, err)
	}
	return tr.Status.Token
}

// kubeconfigFor writes a kubeconfig for the API server of cp whose user
// presents token.
func kubeconfigFor(t *testing.T, cp *kubetest.ControlPlane, name, token string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: cp.Config.Host, CertificateAuthorityData: cp.Config.CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "test", AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitAllowed waits until the RBAC authorizer grants user attrs.
func waitAllowed(t *testing.T, cp *kubetest.ControlPlane, user string, attrs authorizationv1.ResourceAttributes) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		sar, err := cp.Clientset.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &attrs}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if !sar.Status.Allowed {
			return fmt.Errorf("%s may not yet %+v", user, attrs)
		}
		return nil
	})
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUsersThroughKubeconfig: people reach the controller's control plane
// with the ddi CLI and their own kubeconfig, on a real API server. The
// control plane verifies their token with a TokenReview and asks a
// SubjectAccessReview of their RBAC on every route: a namespace reader
// reads that namespace and nothing else, a cluster reader gets the status
// and the dependency graph page (through the CLI's loopback proxy), a
// person without RBAC and an unknown token are refused, writes are
// refused, and a pod's token is as limited as before.
func TestUsersThroughKubeconfig(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{})
	ctx := t.Context()
	cp.Namespace(t, ns, nil)
	cp.Namespace(t, "billing", nil)
	cp.Namespace(t, "people", nil)
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "15.2.0", Endpoints: []v1alpha1.Endpoint{{URL: "postgres://10.0.0.5:5432/app", Ready: true}}}})
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: "billing", Name: "ledger-db"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "16.0.0", Endpoints: []v1alpha1.Endpoint{{URL: "postgres://10.0.0.9:5432/ledger", Ready: true}}}})

	// alice may read shop's providers; bob may read every namespace's
	// providers, dependency sets and pods; carol may nothing.
	const (
		alice = "system:serviceaccount:people:alice"
		bob   = "system:serviceaccount:people:bob"
	)
	subject := func(name string) []rbacv1.Subject {
		return []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "people", Name: name}}
	}
	create(t, cp, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "provider-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"ddi.dev"}, Resources: []string{"providers"}, Verbs: []string{"get", "list"}}}})
	create(t, cp, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice"},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "provider-reader"}, Subjects: subject("alice")})
	create(t, cp, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "ddi-graph-viewer"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"ddi.dev"}, Resources: []string{"providers", "dependencysets"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
	}})
	create(t, cp, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob"},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "ddi-graph-viewer"}, Subjects: subject("bob")})
	waitAllowed(t, cp, alice, authorizationv1.ResourceAttributes{Verb: "list", Group: "ddi.dev", Resource: "providers", Namespace: ns})
	waitAllowed(t, cp, bob, authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"})

	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, cp.StreamCA, 0o600); err != nil {
		t.Fatal(err)
	}
	kc := map[string]string{}
	for _, name := range []string{"alice", "bob", "carol"} {
		kc[name] = kubeconfigFor(t, cp, name, personToken(t, cp, name))
	}
	kc["stranger"] = kubeconfigFor(t, cp, "stranger", "not-a-token-this-cluster-knows")

	// ddi runs the CLI as a person does, with --kubeconfig and the control
	// plane's address (as after their own kubectl port-forward).
	ddi := func(ctx context.Context, who string, args ...string) (string, error) {
		t.Helper()
		var out, errOut syncBuffer
		all := append([]string{"--kubeconfig", kc[who], "--control-plane", cp.StreamURL, "--control-plane-ca", caFile}, args...)
		err := cli.Run(ctx, all, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	tests := []struct {
		name    string
		who     string
		args    []string
		want    []string // in the output when the command succeeds
		wantErr string   // in the error when it must fail
		lacks   string
	}{
		{name: "namespace reader lists its namespace", who: "alice", args: []string{"provider", "list", "--namespace", ns}, want: []string{"pg", "postgresql", "15.2.0"}, lacks: "ledger"},
		{name: "namespace reader gets a provider", who: "alice", args: []string{"provider", "get", "pg", "--namespace", ns}, want: []string{"postgres://10.0.0.5:5432/app"}},
		{name: "namespace reader resolves in its namespace", who: "alice", args: []string{"resolve", "web", "db=postgresql@^15", "--namespace", ns}, want: []string{"shop/pg"}},
		{name: "namespace reader explains, other namespaces counted only", who: "alice", args: []string{"resolve", "web", "db=*/postgresql@*", "--namespace", ns, "--explain", "-o", "json"},
			want: []string{`"chosen": "shop/pg"`, `"hidden": 1`}, lacks: "ledger"},
		{name: "namespace reader refused another namespace", who: "alice", args: []string{"provider", "list", "--namespace", "billing"},
			wantErr: alice + " may not list providers.ddi.dev in namespace billing"},
		{name: "namespace reader refused every namespace", who: "alice", args: []string{"provider", "list", "--namespace", ""},
			wantErr: "may not list providers.ddi.dev in every namespace"},
		{name: "namespace reader refused the status", who: "alice", args: []string{"status"}, wantErr: "may not list pods in every namespace"},
		{name: "namespace reader refused the dashboard", who: "alice", args: []string{"dashboard"}, wantErr: "may not list providers.ddi.dev in every namespace"},
		{name: "writes are refused", who: "alice", args: []string{"provider", "add", "rogue", "--namespace", ns, "--type", "http", "--url", "http://10.0.0.66:80"},
			wantErr: "kubectl apply"},
		{name: "deletes are refused", who: "bob", args: []string{"provider", "rm", "pg", "--namespace", ns}, wantErr: "kubectl apply"},
		{name: "cluster reader lists every namespace", who: "bob", args: []string{"provider", "list", "--namespace", ""}, want: []string{"shop", "billing", "ledger-db"}},
		{name: "cluster reader sees the status", who: "bob", args: []string{"status"}, want: []string{"SIDECAR"}},
		{name: "no RBAC, nothing", who: "carol", args: []string{"provider", "list", "--namespace", ns}, wantErr: "people:carol may not list providers.ddi.dev in namespace shop"},
		{name: "unknown token", who: "stranger", args: []string{"provider", "list", "--namespace", ns}, wantErr: "does not accept the token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ddi(ctx, tt.who, tt.args...)
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ddi %s as %s = %v\n%s\nwant an error containing %q", strings.Join(tt.args, " "), tt.who, err, out, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Errorf("ddi %s as %s: %v\n%s", strings.Join(tt.args, " "), tt.who, err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("ddi %s as %s printed\n%s\nwant %q in it", strings.Join(tt.args, " "), tt.who, out, w)
				}
			}
			if tt.lacks != "" && strings.Contains(out, tt.lacks) {
				t.Errorf("ddi %s as %s printed %q:\n%s", strings.Join(tt.args, " "), tt.who, tt.lacks, out)
			}
		})
	}

	t.Run("client certificate kubeconfig", func(t *testing.T) {
		var out bytes.Buffer
		err := cli.Run(ctx, []string{"--kubeconfig", cp.Kubeconfig, "status"}, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "no bearer token") {
			t.Errorf("ddi status with a client-certificate kubeconfig = %v, want it to say the user has no bearer token", err)
		}
	})
	t.Run("no controller pod", func(t *testing.T) {
		var out bytes.Buffer
		err := cli.Run(ctx, []string{"--kubeconfig", kc["bob"], "status"}, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "no ready ddi controller pod") || !strings.Contains(err.Error(), "ddi dev") {
			t.Errorf("ddi status without a controller pod = %v, want it to say how to install one or run ddi dev", err)
		}
	})

	t.Run("dashboard through the loopback proxy", func(t *testing.T) {
		dctx, cancel := context.WithCancel(ctx)
		var out, errOut syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- cli.Run(dctx, []string{"--kubeconfig", kc["bob"], "--control-plane", cp.StreamURL, "--control-plane-ca", caFile, "dashboard"}, &out, &errOut)
		}()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ddi dashboard ended with %v", err)
			}
		}()
		var page string
		eventually(t, 20*time.Second, func() error {
			select {
			case err := <-done:
				t.Fatalf("ddi dashboard ended early: %v\n%s", err, errOut.String())
			default:
			}
			page = strings.TrimSpace(out.String())
			if !strings.HasSuffix(page, "/dashboard/") {
				return fmt.Errorf("no page address yet: %q", page)
			}
			return nil
		})
		get := func(url string, header map[string]string) (int, string) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			for k, v := range header {
				req.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
			return res.StatusCode, string(b)
		}
		if code, body := get(page, nil); code != 200 || !strings.Contains(body, "<title>ddi dependency graph</title>") {
			t.Errorf("GET %s = %d, want the page", page, code)
		}
		base := strings.TrimSuffix(page, "/dashboard/")
		if code, body := get(base+"/v1/graph", nil); code != 200 || !strings.Contains(body, `"name":"ledger-db"`) {
			t.Errorf("GET /v1/graph through the proxy = %d %s, want every namespace's providers", code, body)
		}
		if code, _ := get(base+"/v1/graph", map[string]string{"Origin": "https://evil.example"}); code != http.StatusForbidden {
			t.Errorf("GET /v1/graph from another origin = %d, want 403", code)
		}
		if code, _ := get(base+"/v1/providers", nil); code != http.StatusNotFound {
			t.Errorf("GET /v1/providers through the page's proxy = %d, want 404 (it forwards the page's routes only)", code)
		}
	})

	// A pod's token for the sidecar audience stays a pod's, whatever RBAC
	// its service account has.
	t.Run("pod token as before", func(t *testing.T) {
		cp.ServiceAccount(t, ns, "fn")
		p := pod("web-1", "web", "db=postgresql@^15")
		create(t, cp, p)
		tok, err := os.ReadFile(podToken(t, cp, p))
		if err != nil {
			t.Fatal(err)
		}
		hc := cp.StreamHTTP(t)
		call := func(method, path string) (int, string) {
			req, _ := http.NewRequestWithContext(ctx, method, cp.StreamURL+path, nil)
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
			res, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(b)
		}
		for _, c := range []struct {
			method, path string
			code         int
		}{
			{"GET", "/v1/providers?namespace=" + ns, 200},
			{"GET", "/v1/providers?namespace=billing", 403},
			{"GET", "/v1/graph", 403},
			{"GET", "/dashboard/", 403},
		} {
			if code, body := call(c.method, c.path); code != c.code {
				t.Errorf("%s %s with a pod token = %d %s, want %d", c.method, c.path, code, body, c.code)
			}
		}
	})

	// A person's token opens no sidecar stream.
	t.Run("user token opens no stream", func(t *testing.T) {
		tok := personToken(t, cp, "bob")
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cp.StreamURL+"/v1/stream", strings.NewReader(`{"sidecarId":"x"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := cp.StreamHTTP(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /v1/stream with a person's token = %d, want 401", res.StatusCode)
		}
	})
}
