package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sbv1 "ddi.dev/ddi/api/servicebinding/v1"
	"ddi.dev/ddi/api/v1alpha1"
	ddiclient "ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/kube"
)

// The identities deploy/ runs as: the controller's ServiceAccount, and a
// function pod's own one (an injected sidecar has no other: it
// authenticates to the controller with the pod's projected token, whose
// audience is ddi, not the API server).
const (
	controllerSA = "system:serviceaccount:ddi-system:ddi-controller"
	functionSA   = "system:serviceaccount:fn:default"
)

// rbacKinds are the rendered objects that grant permissions.
var rbacKinds = map[string]bool{"Namespace": true, "ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true}

// access is one question to the API server's authorizer.
type access struct {
	verb, group, resource, subresource, namespace, name string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.name != "" {
		r += " " + a.name
	}
	ns := a.namespace
	if ns == "" {
		ns = "all namespaces"
	}
	return a.verb + " " + r + " in " + ns
}

// can asks the API server, with a SubjectAccessReview, whether the service
// account user may do a.
func can(t *testing.T, cs kubernetes.Interface, user string, a access) (bool, string) {
	t.Helper()
	ns := strings.Split(user, ":")[2]
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace, Name: a.name,
		},
	}}
	got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview for %s to %s: %v", user, a, err)
	}
	return got.Status.Allowed, got.Status.Reason
}

// applyRBAC creates the rendered RBAC of deploy/ and waits until the
// authorizer knows it.
func applyRBAC(t *testing.T, cp *kubetest.ControlPlane) {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, o := range render(t) {
		if rbacKinds[o.GetKind()] {
			objs = append(objs, o)
		}
	}
	create(t, cp, objs)
	// The RBAC authorizer reads through informers: wait until a grant of
	// the ClusterRoleBinding and one of the RoleBinding are in effect.
	probes := []access{
		{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"},
		{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "ddi-system"},
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range probes {
		for {
			ok, _ := can(t, cp.Clientset, controllerSA, p)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the rendered RBAC did not take effect within 30s: the controller still may not %s", p)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// aggregateRoles runs kube-controller-manager's ClusterRole aggregation
// controller (envtest runs no controllers), which fills deploy/'s
// aggregated ClusterRole ddi-servicebinding from the ClusterRoles labelled
// servicebinding.io/controller: "true", and waits until the controller's
// ServiceAccount may do probe.
func aggregateRoles(t *testing.T, cp *kubetest.ControlPlane, probe access) {
	t.Helper()
	cmd := exec.Command(filepath.Join(kubetest.AssetsDir(), "kube-controller-manager"),
		"--kubeconfig="+cp.Kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--controllers=clusterrole-aggregation-controller")
	logPath := filepath.Join(t.TempDir(), "kube-controller-manager.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kube-controller-manager: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = f.Close()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ok, _ := can(t, cp.Clientset, controllerSA, probe); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the aggregated ClusterRole ddi-servicebinding did not grant %s within 60s (kube-controller-manager log: %s)", probe, logPath)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRBAC applies the RBAC that deploy/ renders to a real API server and
// asks its authorizer what the controller's ServiceAccount, and a
// function pod's, may and may not do.
func TestRBAC(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{NoController: true, SkipCRDs: true})
	applyRBAC(t, cp)
	// A service kind's own ClusterRole, as the Service Binding
	// specification asks its providers to ship one: the aggregation adds
	// it to ddi-servicebinding.
	create(t, cp, []*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
		"metadata": map[string]any{"name": "provisionedbackends-reader", "labels": map[string]any{"servicebinding.io/controller": "true"}},
		"rules":    []any{map[string]any{"apiGroups": []any{"stable.example.com"}, "resources": []any{"provisionedbackends"}, "verbs": []any{"get", "list", "watch"}}},
	}}})
	aggregateRoles(t, cp, access{verb: "list", group: "stable.example.com", resource: "provisionedbackends"})

	tests := []struct {
		name  string
		user  string
		do    access
		allow bool
	}{
		// What the controller does, by component.
		{name: "store lists Providers", user: controllerSA, do: access{verb: "list", group: "ddi.dev", resource: "providers"}, allow: true},
		{name: "store watches Providers", user: controllerSA, do: access{verb: "watch", group: "ddi.dev", resource: "providers"}, allow: true},
		{name: "store creates Providers", user: controllerSA, do: access{verb: "create", group: "ddi.dev", resource: "providers", namespace: "team-a"}, allow: true},
		{name: "store updates Providers", user: controllerSA, do: access{verb: "update", group: "ddi.dev", resource: "providers", namespace: "team-a"}, allow: true},
		{name: "store deletes Providers", user: controllerSA, do: access{verb: "delete", group: "ddi.dev", resource: "providers", namespace: "team-a"}, allow: true},
		{name: "reconciler writes Provider status", user: controllerSA, do: access{verb: "update", group: "ddi.dev", resource: "providers", subresource: "status", namespace: "team-a"}, allow: true},
		{name: "reconciler watches DependencySets", user: controllerSA, do: access{verb: "watch", group: "ddi.dev", resource: "dependencysets"}, allow: true},
		{name: "reconciler writes DependencySet status", user: controllerSA, do: access{verb: "update", group: "ddi.dev", resource: "dependencysets", subresource: "status", namespace: "team-a"}, allow: true},
		{name: "control plane reads a secretRef", user: controllerSA, do: access{verb: "get", resource: "secrets", namespace: "team-a", name: "orders-db-credentials"}, allow: true},
		{name: "store creates inline Secrets in ddi-system", user: controllerSA, do: access{verb: "create", resource: "secrets", namespace: "ddi-system"}, allow: true},
		{name: "store reads inline Secrets in ddi-system", user: controllerSA, do: access{verb: "get", resource: "secrets", namespace: "ddi-system"}, allow: true},
		{name: "store deletes inline Secrets in ddi-system", user: controllerSA, do: access{verb: "delete", resource: "secrets", namespace: "ddi-system"}, allow: true},
		{name: "store lists its orphaned inline Secrets in ddi-system", user: controllerSA, do: access{verb: "list", resource: "secrets", namespace: "ddi-system"}, allow: true},
		{name: "certificates: update the certificate Secret", user: controllerSA, do: access{verb: "update", resource: "secrets", namespace: "ddi-system", name: "ddi-webhook-certs"}, allow: true},
		{name: "podauth reviews tokens", user: controllerSA, do: access{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"}, allow: true},
		{name: "podauth asks a person's RBAC", user: controllerSA, do: access{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"}, allow: true},
		{name: "podauth reads a pod", user: controllerSA, do: access{verb: "get", resource: "pods", namespace: "fn"}, allow: true},
		{name: "webhook watches namespaces", user: controllerSA, do: access{verb: "watch", resource: "namespaces"}, allow: true},
		{name: "webhook checks a ReplicaSet before an Event on it", user: controllerSA, do: access{verb: "get", group: "apps", resource: "replicasets", namespace: "fn"}, allow: true},
		{name: "webhook checks a Job before an Event on it", user: controllerSA, do: access{verb: "get", group: "batch", resource: "jobs", namespace: "fn"}, allow: true},
		{name: "webhook records Events", user: controllerSA, do: access{verb: "create", group: "events.k8s.io", resource: "events", namespace: "fn"}, allow: true},
		{name: "reconciler watches EndpointSlices", user: controllerSA, do: access{verb: "watch", group: "discovery.k8s.io", resource: "endpointslices"}, allow: true},
		{name: "replicas list the EndpointSlices of Service ddi-controller", user: controllerSA, do: access{verb: "list", group: "discovery.k8s.io", resource: "endpointslices", namespace: "ddi-system"}, allow: true},
		{name: "replicas review each other's tokens", user: controllerSA, do: access{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"}, allow: true},
		{name: "reconciler reads a Knative Service", user: controllerSA, do: access{verb: "get", group: "serving.knative.dev", resource: "services", namespace: "fn"}, allow: true},
		{name: "reconciler lists Knative Services", user: controllerSA, do: access{verb: "list", group: "serving.knative.dev", resource: "services"}, allow: true},
		{name: "reconciler watches Knative Services", user: controllerSA, do: access{verb: "watch", group: "serving.knative.dev", resource: "services"}, allow: true},
		{name: "reconciler reads a Knative Revision", user: controllerSA, do: access{verb: "get", group: "serving.knative.dev", resource: "revisions", namespace: "fn"}, allow: true},
		{name: "caBundle: watch webhook configurations", user: controllerSA, do: access{verb: "watch", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations"}, allow: true},
		{name: "caBundle: update its own webhook configuration", user: controllerSA, do: access{verb: "update", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: "ddi-sidecar-injector"}, allow: true},
		{name: "servicebinding: watch ServiceBindings", user: controllerSA, do: access{verb: "watch", group: "servicebinding.io", resource: "servicebindings"}, allow: true},
		{name: "servicebinding: its finalizer", user: controllerSA, do: access{verb: "update", group: "servicebinding.io", resource: "servicebindings", namespace: "fn"}, allow: true},
		{name: "servicebinding: write status", user: controllerSA, do: access{verb: "update", group: "servicebinding.io", resource: "servicebindings", subresource: "status", namespace: "fn"}, allow: true},
		{name: "servicebinding: watch mappings", user: controllerSA, do: access{verb: "watch", group: "servicebinding.io", resource: "clusterworkloadresourcemappings"}, allow: true},
		// Through the aggregated ClusterRole ddi-servicebinding.
		{name: "servicebinding: watch Deployments", user: controllerSA, do: access{verb: "watch", group: "apps", resource: "deployments"}, allow: true},
		{name: "servicebinding: project into a Deployment", user: controllerSA, do: access{verb: "update", group: "apps", resource: "deployments", namespace: "fn"}, allow: true},
		{name: "servicebinding: project into a CronJob", user: controllerSA, do: access{verb: "update", group: "batch", resource: "cronjobs", namespace: "fn"}, allow: true},
		{name: "servicebinding: project into a Knative Service", user: controllerSA, do: access{verb: "update", group: "serving.knative.dev", resource: "services", namespace: "fn"}, allow: true},
		{name: "servicebinding: a kind's own aggregated ClusterRole", user: controllerSA, do: access{verb: "list", group: "stable.example.com", resource: "provisionedbackends"}, allow: true},
		{name: "leader election: update the Lease", user: controllerSA, do: access{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "ddi-system"}, allow: true},

		// What it must not do.
		{name: "no Knative Revisions listed", user: controllerSA, do: access{verb: "list", group: "serving.knative.dev", resource: "revisions"}},
		{name: "no Knative Revisions watched", user: controllerSA, do: access{verb: "watch", group: "serving.knative.dev", resource: "revisions"}},
		{name: "no Knative Revision changed", user: controllerSA, do: access{verb: "update", group: "serving.knative.dev", resource: "revisions", namespace: "fn"}},
		{name: "no Knative Service created", user: controllerSA, do: access{verb: "create", group: "serving.knative.dev", resource: "services", namespace: "fn"}},
		{name: "no Knative Service deleted", user: controllerSA, do: access{verb: "delete", group: "serving.knative.dev", resource: "services", namespace: "fn"}},
		{name: "no Secrets created in kube-system", user: controllerSA, do: access{verb: "create", resource: "secrets", namespace: "kube-system"}},
		{name: "no Secrets created in default", user: controllerSA, do: access{verb: "create", resource: "secrets", namespace: "default"}},
		{name: "no Secrets created in a function namespace", user: controllerSA, do: access{verb: "create", resource: "secrets", namespace: "team-a"}},
		{name: "no Secrets deleted in kube-system", user: controllerSA, do: access{verb: "delete", resource: "secrets", namespace: "kube-system"}},
		{name: "no Secrets deleted in a function namespace", user: controllerSA, do: access{verb: "delete", resource: "secrets", namespace: "team-a"}},
		{name: "no Secrets updated in kube-system", user: controllerSA, do: access{verb: "update", resource: "secrets", namespace: "kube-system"}},
		{name: "no other Secret of ddi-system updated", user: controllerSA, do: access{verb: "update", resource: "secrets", namespace: "ddi-system", name: "someone-elses"}},
		{name: "no Secrets listed cluster-wide", user: controllerSA, do: access{verb: "list", resource: "secrets"}},
		{name: "no Secrets watched cluster-wide", user: controllerSA, do: access{verb: "watch", resource: "secrets"}},
		{name: "no Secrets listed in kube-system", user: controllerSA, do: access{verb: "list", resource: "secrets", namespace: "kube-system"}},
		{name: "no tokens minted for other accounts", user: controllerSA, do: access{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "kube-system"}},
		{name: "no pods created", user: controllerSA, do: access{verb: "create", resource: "pods", namespace: "default"}},
		{name: "no pods deleted", user: controllerSA, do: access{verb: "delete", resource: "pods", namespace: "fn"}},
		{name: "no exec into pods", user: controllerSA, do: access{verb: "create", resource: "pods", subresource: "exec", namespace: "fn"}},
		{name: "no pods listed", user: controllerSA, do: access{verb: "list", resource: "pods"}},
		{name: "no Deployments created", user: controllerSA, do: access{verb: "create", group: "apps", resource: "deployments", namespace: "fn"}},
		{name: "no Deployments deleted", user: controllerSA, do: access{verb: "delete", group: "apps", resource: "deployments", namespace: "fn"}},
		{name: "no Deployments patched", user: controllerSA, do: access{verb: "patch", group: "apps", resource: "deployments", namespace: "fn"}},
		{name: "no ReplicaSets deleted", user: controllerSA, do: access{verb: "delete", group: "apps", resource: "replicasets", namespace: "fn"}},
		{name: "no ServiceBindings created", user: controllerSA, do: access{verb: "create", group: "servicebinding.io", resource: "servicebindings", namespace: "fn"}},
		{name: "no ServiceBindings deleted", user: controllerSA, do: access{verb: "delete", group: "servicebinding.io", resource: "servicebindings", namespace: "fn"}},
		{name: "no mappings changed", user: controllerSA, do: access{verb: "update", group: "servicebinding.io", resource: "clusterworkloadresourcemappings", name: "cronjobs.batch"}},
		{name: "no workloads of an unlisted kind changed", user: controllerSA, do: access{verb: "update", group: "example.com", resource: "functions", namespace: "fn"}},
		{name: "no other webhook configuration updated", user: controllerSA, do: access{verb: "update", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: "istio-sidecar-injector"}},
		{name: "its own webhook configuration not deleted", user: controllerSA, do: access{verb: "delete", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: "ddi-sidecar-injector"}},
		{name: "no webhook configurations created", user: controllerSA, do: access{verb: "create", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations"}},
		{name: "no validating webhooks updated", user: controllerSA, do: access{verb: "update", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: "any"}},
		{name: "no RBAC bound", user: controllerSA, do: access{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"}},
		{name: "no roles escalated", user: controllerSA, do: access{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "clusterroles"}},
		{name: "no Leases of kube-system", user: controllerSA, do: access{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system"}},
		{name: "no CRDs changed", user: controllerSA, do: access{verb: "update", group: "apiextensions.k8s.io", resource: "customresourcedefinitions", name: "providers.ddi.dev"}},
		{name: "no node proxy", user: controllerSA, do: access{verb: "get", resource: "nodes", subresource: "proxy"}},
		{name: "no impersonation", user: controllerSA, do: access{verb: "impersonate", resource: "serviceaccounts", namespace: "kube-system"}},

		// A function pod's account: deploy/ grants it nothing; the
		// sidecar talks only to the controller.
		{name: "function: no Providers read", user: functionSA, do: access{verb: "get", group: "ddi.dev", resource: "providers", namespace: "fn"}},
		{name: "function: no Providers listed", user: functionSA, do: access{verb: "list", group: "ddi.dev", resource: "providers"}},
		{name: "function: no Providers created", user: functionSA, do: access{verb: "create", group: "ddi.dev", resource: "providers", namespace: "fn"}},
		{name: "function: no DependencySets read", user: functionSA, do: access{verb: "list", group: "ddi.dev", resource: "dependencysets", namespace: "fn"}},
		{name: "function: no Secrets read", user: functionSA, do: access{verb: "get", resource: "secrets", namespace: "fn"}},
		{name: "function: no inline Secrets read", user: functionSA, do: access{verb: "get", resource: "secrets", namespace: "ddi-system"}},
		{name: "function: no tokens reviewed", user: functionSA, do: access{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"}},
		{name: "function: no access reviews", user: functionSA, do: access{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"}},
		{name: "function: no pods read", user: functionSA, do: access{verb: "get", resource: "pods", namespace: "fn"}},
		{name: "function: no Events recorded", user: functionSA, do: access{verb: "create", group: "events.k8s.io", resource: "events", namespace: "fn"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := can(t, cp.Clientset, tt.user, tt.do)
			if got != tt.allow {
				t.Errorf("can %s %s = %t (%s), want %t", tt.user, tt.do, got, reason, tt.allow)
			}
		})
	}
}

// TestSidecarTokenIsNotAnAPIToken checks that the token an injected
// sidecar holds (its pod's, audience ddi) is refused by the API server:
// a sidecar, or anyone who steals its token, cannot use it there.
func TestSidecarTokenIsNotAnAPIToken(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{NoController: true, SkipCRDs: true})
	cp.Namespace(t, "fn", nil)
	ctx := t.Context()
	tr, err := cp.Clientset.CoreV1().ServiceAccounts("fn").CreateToken(ctx, "default", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"ddi"}, ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request a token with audience ddi: %v", err)
	}
	cfg := rest.AnonymousClientConfig(cp.Config)
	cfg.BearerToken = tr.Status.Token
	cs := kubernetes.NewForConfigOrDie(cfg)
	_, err = cs.CoreV1().Namespaces().Get(ctx, "fn", metav1.GetOptions{})
	if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("a request with the sidecar's token: error = %v, want Unauthorized", err)
	}
}

// logBuffer collects a controller's logs, safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually retries f until it succeeds or d passes.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestControllerWorksWithItsRBAC runs the real controller as its
// ServiceAccount, with only the RBAC deploy/ renders, and drives what it
// does: its own certificate Secret and caBundle, injection, a sidecar's
// run-time registration with secret material (token review, pod read,
// Provider and inline Secret written, read, deleted), the Provider
// reconciler (a Knative Service's revisions followed once Knative's CRDs
// appear), and an Event about a skipped pod's ReplicaSet. Nothing may be refused: the controller logs no "forbidden".
func TestControllerWorksWithItsRBAC(t *testing.T) {
	var logs logBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	})
	cp := kubetest.RunControlPlane(t, kubetest.Options{
		SelfManagedCerts: true,
		As:               controllerSA,
		Setup: func(cp *kubetest.ControlPlane) {
			applyRBAC(t, cp)
			aggregateRoles(t, cp, access{verb: "update", group: "apps", resource: "deployments", namespace: "fn"})
		},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// Knative Serving is installed half-way through.
		Controller: func(o *controller.Options) { o.KnativeDiscovery = 500 * time.Millisecond },
	})
	ctx := t.Context()
	const fn = "fn"
	cp.Namespace(t, fn, nil)
	cp.ServiceAccount(t, fn, "fn")

	t.Run("a sidecar registers a provider with secret material", func(t *testing.T) {
		owner := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: fn, Name: "registrar"},
			Spec:       corev1.PodSpec{ServiceAccountName: "fn", Containers: []corev1.Container{{Name: "fn", Image: "example.com/fn:1"}}},
		}
		if err := cp.Client.Create(ctx, owner); err != nil {
			t.Fatal(err)
		}
		c := &ddiclient.Client{BaseURL: cp.StreamURL, HTTP: cp.StreamHTTP(t), TokenFile: podToken(t, cp, owner)}
		reg := registry.Provider{Namespace: fn, Name: "cache", Type: "redis", Version: "7.2.0",
			Endpoints: []registry.Endpoint{{URL: "redis://10.0.0.9:6379", Ready: true}},
			Secret:    map[string]string{"password": "s3cret"},
			Lease:     &registry.Lease{TTL: registry.Duration(time.Hour)}}
		// The control plane is ready once its index has listed the store.
		eventually(t, 20*time.Second, func() error {
			_, _, err := c.PutProvider(ctx, reg)
			return err
		})
		var obj v1alpha1.Provider
		if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: fn, Name: "cache"}, &obj); err != nil {
			t.Fatal(err)
		}
		name := obj.Annotations[v1alpha1.AnnotationInlineSecret]
		var sec corev1.Secret
		if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: kubetest.SystemNamespace, Name: name}, &sec); err != nil {
			t.Fatalf("the registration's inline Secret %s in %s: %v", name, kubetest.SystemNamespace, err)
		}
		if sec.Type != kube.SecretType || string(sec.Data["password"]) != "s3cret" {
			t.Errorf("inline Secret type %q, password %q; want %q holding the material", sec.Type, sec.Data["password"], kube.SecretType)
		}
		got, err := cp.Store.Get(ctx, fn, "cache")
		if err != nil || got.Secret["password"] != "s3cret" {
			t.Errorf("store Get = %v, %v; want the material", got.Secret, err)
		}
		if err := c.DeleteProvider(ctx, fn, "cache", 0); err != nil {
			t.Fatalf("deregister: %v", err)
		}
		eventually(t, 20*time.Second, func() error {
			err := cp.Client.Get(ctx, client.ObjectKey{Namespace: kubetest.SystemNamespace, Name: name}, &corev1.Secret{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("inline Secret %s still there (err %v)", name, err)
		})
	})

	t.Run("the Provider reconciler writes status", func(t *testing.T) {
		p := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: fn, Name: "orders-db"},
			Spec: v1alpha1.ProviderSpec{Type: "postgresql", ServiceRef: &v1alpha1.ServiceReference{Name: "orders-db"}}}
		if err := cp.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return err
			}
			if meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady) == nil {
				return errors.New("no Ready condition yet")
			}
			return nil
		})
	})

	t.Run("the Provider reconciler follows a Knative Service's revisions", func(t *testing.T) {
		cp.InstallKnative(t)
		knative := func(kind, name string) *unstructured.Unstructured {
			u := &unstructured.Unstructured{}
			u.SetAPIVersion("serving.knative.dev/v1")
			u.SetKind(kind)
			u.SetNamespace(fn)
			u.SetName(name)
			return u
		}
		rev := knative("Revision", "greeter-00001")
		rev.SetAnnotations(map[string]string{v1alpha1.AnnotationVersion: "2.0.0"})
		ksvc := knative("Service", "greeter")
		for _, o := range []client.Object{rev, ksvc} {
			if err := cp.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		ksvc.Object["status"] = map[string]any{
			"address":                 map[string]any{"url": "http://greeter.fn.svc.cluster.local"},
			"latestReadyRevisionName": "greeter-00001",
			"traffic":                 []any{map[string]any{"revisionName": "greeter-00001", "percent": int64(100), "latestRevision": true}},
			"conditions":              []any{map[string]any{"type": "Ready", "status": "True"}, map[string]any{"type": "RoutesReady", "status": "True"}},
		}
		if err := cp.Client.Status().Update(ctx, ksvc); err != nil {
			t.Fatal(err)
		}
		p := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: fn, Name: "greeter"}, Spec: v1alpha1.ProviderSpec{Type: "http",
			ServiceRef: &v1alpha1.ServiceReference{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "greeter"}}}
		if err := cp.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || p.Status.Version != "2.0.0" {
				return fmt.Errorf("Provider greeter: Ready %+v, version %q; want True and the revision's 2.0.0", c, p.Status.Version)
			}
			return nil
		})
	})

	t.Run("the webhook records a skip on the pod's ReplicaSet", func(t *testing.T) {
		labels := map[string]string{"app": "web"}
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: fn, Name: "web"},
			Spec: appsv1.ReplicaSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.com/web:1"}}}},
			},
		}
		if err := cp.Client.Create(ctx, rs); err != nil {
			t.Fatal(err)
		}
		// Sent to the webhook by its opt-in label, skipped by its opt-out
		// annotation ("false" wins).
		podLabels := map[string]string{"app": "web", inject.KeyInject: "true"}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: fn, GenerateName: "web-", Labels: podLabels,
				Annotations:     map[string]string{inject.KeyInject: "false"},
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
			Spec: rs.Spec.Template.Spec,
		}
		if err := cp.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, func() error {
			var list eventsv1.EventList
			if err := cp.Client.List(ctx, &list, client.InNamespace(fn)); err != nil {
				return err
			}
			for _, e := range list.Items {
				if e.Regarding.UID == rs.UID && e.Reason == "InjectionSkipped" {
					return nil
				}
			}
			return errors.New("no InjectionSkipped Event on the ReplicaSet yet")
		})
	})

	t.Run("the ServiceBinding reconciler projects a Secret into a Deployment", func(t *testing.T) {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: fn, Name: "db-creds"}, StringData: map[string]string{"type": "postgresql"}}
		labels := map[string]string{"app": "orders"}
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: fn, Name: "orders"}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "orders", Image: "example.com/orders:1"}}}},
		}}
		sb := &sbv1.ServiceBinding{ObjectMeta: metav1.ObjectMeta{Namespace: fn, Name: "db"}, Spec: sbv1.ServiceBindingSpec{
			Workload: sbv1.ServiceBindingWorkloadReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "orders"},
			Service:  sbv1.ServiceBindingServiceReference{APIVersion: "v1", Kind: "Secret", Name: "db-creds"},
		}}
		for _, o := range []client.Object{sec, d, sb} {
			if err := cp.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 20*time.Second, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(sb), sb); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(sb.Status.Conditions, sbv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("ServiceBinding Ready = %+v, want True", c)
			}
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
				return err
			}
			if ms := d.Spec.Template.Spec.Containers[0].VolumeMounts; len(ms) != 1 || ms[0].MountPath != "/bindings/db" {
				return fmt.Errorf("Deployment mounts %v, want the binding at /bindings/db", ms)
			}
			return nil
		})
		if err := cp.Client.Delete(ctx, sb); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(sb), sb); !apierrors.IsNotFound(err) {
				return fmt.Errorf("ServiceBinding still there (finalizers %v, err %v)", sb.Finalizers, err)
			}
			return nil
		})
	})

	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("the controller was refused something it does; its log says \"forbidden\"")
	}
}

// podToken asks the TokenRequest API for a token bound to pod, as the
// kubelet projects it into the sidecar, and writes it to a file.
func podToken(t *testing.T, cp *kubetest.ControlPlane, p *corev1.Pod) string {
	t.Helper()
	tr, err := cp.Clientset.CoreV1().ServiceAccounts(p.Namespace).CreateToken(t.Context(), p.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{"ddi"},
			ExpirationSeconds: ptr.To[int64](600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: p.Name, UID: p.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token request for pod %s: %v", p.Name, err)
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
