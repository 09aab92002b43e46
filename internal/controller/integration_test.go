package controller_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	ddiclient "ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/httpapi"
	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/sidecar"
)

const ns = "shop"

func pod(name, app, deps string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app.kubernetes.io/name": app}},
		Spec:       corev1.PodSpec{ServiceAccountName: "fn", Containers: []corev1.Container{{Name: "fn", Image: "example.com/fn:1"}}},
	}
	if deps != "" {
		p.Annotations = map[string]string{inject.AnnotationDependencies: deps}
	}
	return p
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

func create(t *testing.T, cp *kubetest.ControlPlane, obj client.Object) {
	t.Helper()
	if err := cp.Client.Create(t.Context(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// firstMessage opens a stream with the token in tokenFile and returns the
// first message, or the error that refused the stream.
func firstMessage(t *testing.T, cp *kubetest.ControlPlane, tokenFile string, hello protocol.Hello) (*protocol.Message, error) {
	t.Helper()
	c := &ddiclient.Client{BaseURL: cp.StreamURL, HTTP: cp.StreamHTTP(t), TokenFile: tokenFile}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := c.Stream(ctx, hello)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	m, err := s.Recv()
	return &m, err
}

func TestSidecarIdentityAndSecrets(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{})
	ctx := t.Context()
	cp.Namespace(t, ns, nil)
	cp.ServiceAccount(t, ns, "fn")

	create(t, cp, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-creds"},
		Data: map[string][]byte{"username": []byte("orders"), "password": []byte("s3cret"), "admin-password": []byte("root")}})
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "15.4.0",
		Endpoints: []v1alpha1.Endpoint{{URL: "postgresql://10.1.2.3:5432", Ready: true}},
		SecretRef: &v1alpha1.SecretReference{Name: "db-creds", Keys: []string{"username", "password"}},
		Scope:     &v1alpha1.Scope{Workloads: []string{"orders"}},
	}})
	orders, other := pod("orders-7d9f-abcde", "orders", "db=postgresql@^15"), pod("other-1", "other", "db=db")
	for _, p := range []*corev1.Pod{orders, other} {
		create(t, cp, p)
	}
	ordersToken, otherToken := podToken(t, cp, orders), podToken(t, cp, other)

	t.Run("a sidecar receives exactly its pod's bindings", func(t *testing.T) {
		// The sidecar claims to be someone else; the control plane ignores
		// the claim and serves the token's pod.
		list := sidecarBindings(t, sidecar.Config{
			ControlPlane: cp.StreamURL, CA: cp.StreamCA, TokenFile: ordersToken,
			Consumer:     registry.Consumer{Namespace: "kube-system", Name: "liar"},
			Dependencies: []registry.Dependency{{Alias: "stolen", Selector: registry.Selector{Provider: "db"}}},
		})
		if len(list.Bindings) != 1 || len(list.Unresolved) != 0 {
			t.Fatalf("bindings = %+v, unresolved = %+v; want just db", list.Bindings, list.Unresolved)
		}
		b := list.Bindings[0]
		if b.Name != "db" || b.Provider != "db" || b.Namespace != ns {
			t.Errorf("binding = %s -> %s/%s, want db -> shop/db", b.Name, b.Namespace, b.Provider)
		}
		want := map[string]string{"username": "orders", "password": "s3cret"}
		if len(b.Secret) != 2 || b.Secret["username"] != want["username"] || b.Secret["password"] != want["password"] {
			t.Errorf("secret = %v, want only the referenced keys %v", b.Secret, want)
		}
	})

	t.Run("an injected sidecar trusts the stream with the CA in its pod", func(t *testing.T) {
		p := pod("orders-injected", "orders", "db=postgresql@^15")
		p.Labels[inject.KeyInject] = "true"
		create(t, cp, p)
		ca := injectedCA(t, p)
		if ca != string(cp.StreamCA) {
			t.Errorf("%s = %q, want the CA of the stream's certificate %q", inject.EnvControlPlaneCA, ca, cp.StreamCA)
		}
		list := sidecarBindings(t, sidecar.Config{ControlPlane: cp.StreamURL, CA: []byte(ca), TokenFile: podToken(t, cp, p),
			Consumer: registry.Consumer{Name: "orders"}})
		if len(list.Bindings) != 1 || list.Bindings[0].Name != "db" || list.Bindings[0].Secret["password"] != "s3cret" {
			t.Errorf("bindings = %+v, want db with its secret", list.Bindings)
		}
	})

	t.Run("refused: a client without the CA", func(t *testing.T) {
		c := &ddiclient.Client{BaseURL: cp.StreamURL, TokenFile: ordersToken} // system roots
		_, err := c.Stream(t.Context(), protocol.Hello{SidecarID: "probe-no-ca"})
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Errorf("stream without the CA: err = %v, want a certificate verification error", err)
		}
	})

	t.Run("refused: plain HTTP", func(t *testing.T) {
		resp, err := http.Get("http://" + strings.TrimPrefix(cp.StreamURL, "https://") + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /healthz over plain HTTP = %d, want 400 (the port speaks TLS only)", resp.StatusCode)
		}
	})

	t.Run("identity comes from the pod", func(t *testing.T) {
		m, err := firstMessage(t, cp, ordersToken, protocol.Hello{SidecarID: "probe-orders", Consumer: registry.Consumer{Name: "liar"}})
		if err != nil {
			t.Fatal(err)
		}
		if m.Consumer == nil || m.Consumer.Namespace != ns || m.Consumer.Name != "orders" || m.Consumer.ServiceAccount != "fn" {
			t.Errorf("consumer = %+v, want shop/orders as service account fn", m.Consumer)
		}
	})

	t.Run("another pod's token gets no secret of this one", func(t *testing.T) {
		m, err := firstMessage(t, cp, otherToken, protocol.Hello{SidecarID: "probe-other",
			Dependencies: []string{"steal=db"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range m.Bindings {
			if len(b.Secret) > 0 {
				t.Errorf("pod other-1 received secret keys %v of binding %s", keys(b.Secret), b.Name)
			}
		}
		if len(m.Bindings) != 0 || len(m.Unresolved) != 1 || m.Unresolved[0].Name != "db" {
			t.Errorf("other-1: bindings %d, unresolved %+v; want db unresolved (out of scope) and the claimed 'steal' ignored", len(m.Bindings), m.Unresolved)
		}
	})

	refused := []struct {
		name  string
		token func(t *testing.T) string
	}{
		{"no token", func(t *testing.T) string { return "" }},
		{"forged token", func(t *testing.T) string { return writeToken(t, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl") }},
		{"expired token", func(t *testing.T) string { return writeToken(t, expiredToken(t, cp, orders)) }},
		{"wrong audience", func(t *testing.T) string {
			tr, err := cp.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "fn", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				Audiences: []string{"not-ddi"}, BoundObjectRef: &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: orders.Name, UID: orders.UID}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return writeToken(t, tr.Status.Token)
		}},
		{"token not bound to a pod", func(t *testing.T) string {
			tr, err := cp.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "fn", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"ddi"}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return writeToken(t, tr.Status.Token)
		}},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			_, err := firstMessage(t, cp, tc.token(t), protocol.Hello{SidecarID: "probe-" + strings.ReplaceAll(tc.name, " ", "-")})
			var pe *httpapi.Problem
			if !errors.As(err, &pe) || pe.Status != http.StatusUnauthorized {
				t.Errorf("stream with %s: err = %v, want 401", tc.name, err)
			}
		})
	}

	t.Run("refused: token of a deleted pod", func(t *testing.T) {
		gone := pod("gone-1", "orders", "")
		create(t, cp, gone)
		tok := podToken(t, cp, gone)
		if err := cp.Client.Delete(ctx, gone, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		_, err := firstMessage(t, cp, tok, protocol.Hello{SidecarID: "probe-gone"})
		var pe *httpapi.Problem
		if !errors.As(err, &pe) || pe.Status != http.StatusUnauthorized {
			t.Errorf("stream with the token of a deleted pod: err = %v, want 401", err)
		}
	})

	t.Run("DependencySet adds dependencies and reports status", func(t *testing.T) {
		create(t, cp, &v1alpha1.DependencySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"}, Spec: v1alpha1.DependencySetSpec{
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "orders"}},
			Dependencies: []v1alpha1.Dependency{
				{Alias: "primary", Provider: &v1alpha1.ProviderReference{Name: "db"}},
				{Alias: "cache", Selector: &v1alpha1.ProviderSelector{Type: "redis"}},
			},
		}})
		var ds v1alpha1.DependencySet
		eventually(t, 20*time.Second, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders"}, &ds); err != nil {
				return err
			}
			if ds.Status.ObservedGeneration != ds.Generation || ds.Status.DependencyCount != 2 {
				return errors.New("status not observed yet")
			}
			return nil
		})
		c := meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.ConditionReady)
		if ds.Status.ResolvedCount != 1 || c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonUnresolved {
			t.Errorf("status = %+v, want 1 of 2 resolved and Ready False Unresolved", ds.Status)
		}
		m, err := firstMessage(t, cp, ordersToken, protocol.Hello{SidecarID: "probe-orders-2"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, b := range m.Bindings {
			got = append(got, b.Name)
		}
		if strings.Join(got, ",") != "db,primary" || len(m.Unresolved) != 1 || m.Unresolved[0].Name != "cache" {
			t.Errorf("bindings %v, unresolved %+v; want db,primary bound and cache unresolved", got, m.Unresolved)
		}
	})
}

// bindingList is the sidecar's GET /v1/bindings.
type bindingList struct {
	Bindings   []registry.Binding    `json:"bindings"`
	Unresolved []registry.Unresolved `json:"unresolved"`
}

// sidecarBindings runs a sidecar with cfg until it has its first snapshot
// and returns its bindings.
func sidecarBindings(t *testing.T, cfg sidecar.Config) bindingList {
	t.Helper()
	sc, err := sidecar.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sc.Serve(sctx, ln) }()
	defer func() { cancel(); <-done }()

	var list bindingList
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + ln.Addr().String() + "/v1/bindings")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if err := json.Unmarshal(b, &list); err != nil {
					t.Fatal(err)
				}
				return list
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar got no snapshot within 20s (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// injectedCA returns the DDI_CONTROL_PLANE_CA the webhook gave the sidecar
// of p (as created).
func injectedCA(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name != inject.SidecarName {
				continue
			}
			for _, e := range c.Env {
				if e.Name == inject.EnvControlPlaneCA {
					return e.Value
				}
			}
			t.Fatalf("the sidecar of pod %s has no %s", p.Name, inject.EnvControlPlaneCA)
		}
	}
	t.Fatalf("pod %s was not injected", p.Name)
	return ""
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func writeToken(t *testing.T, tok string) string {
	t.Helper()
	if tok == "" {
		return ""
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// expiredToken signs, with the API server's own service-account key, a
// token for pod p that expired an hour ago: everything about it is genuine
// except its age.
func expiredToken(t *testing.T, cp *kubetest.ControlPlane, p *corev1.Pod) string {
	t.Helper()
	dir := cp.Env.ControlPlane.GetAPIServer().CertDir
	raw, err := os.ReadFile(filepath.Join(dir, "sa-signer.key"))
	if err != nil {
		t.Fatalf("service-account signing key: %v", err)
	}
	block, _ := pem.Decode(raw)
	var key any
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		key = k
	} else if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		key = k
	} else {
		t.Fatalf("parse signing key: %v", err)
	}
	// Take issuer and claims from a real token, then age it.
	real := strings.Split(mustRead(t, podToken(t, cp, p)), ".")
	var header, claims map[string]any
	decodeSeg(t, real[0], &header)
	decodeSeg(t, real[1], &claims)
	now := time.Now()
	claims["iat"] = now.Add(-2 * time.Hour).Unix()
	claims["nbf"] = now.Add(-2 * time.Hour).Unix()
	claims["exp"] = now.Add(-time.Hour).Unix()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		header["alg"] = "RS256"
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	case *ecdsa.PrivateKey:
		// ES256: r and s, 32 bytes each.
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k, sum[:])
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	default:
		t.Fatalf("unexpected signing key %T", key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func mustRead(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decodeSeg(t *testing.T, seg string, v any) {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestProviderFromEndpointSlices(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{})
	ctx := t.Context()
	cp.Namespace(t, ns, nil)
	create(t, cp, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}, {Name: "metrics", Port: 9187}}}})
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "15.0.0", ServiceRef: &v1alpha1.ServiceReference{Name: "pg", Port: ptr.To(intstrFromString("pg"))}}})

	// No EndpointSlice yet: not ready, and it says why.
	var p v1alpha1.Provider
	waitCondition := func(status metav1.ConditionStatus, reason string) {
		t.Helper()
		eventually(t, 20*time.Second, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &p); err != nil {
				return err
			}
			c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != status || c.Reason != reason || p.Status.ObservedGeneration != p.Generation {
				return errors.New("condition " + conditionString(c))
			}
			return nil
		})
	}
	waitCondition(metav1.ConditionFalse, v1alpha1.ReasonNoReadyEndpoints)

	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "pg-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "pg"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.0.0.6"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("pg"), Port: ptr.To[int32](5432)}, {Name: ptr.To("metrics"), Port: ptr.To[int32](9187)}},
	}
	create(t, cp, slice)
	waitCondition(metav1.ConditionTrue, v1alpha1.ReasonEndpointsReady)
	want := []v1alpha1.EndpointStatus{{URL: "postgresql://10.0.0.5:5432", Ready: true}, {URL: "postgresql://10.0.0.6:5432", Ready: false}}
	if len(p.Status.Endpoints) != 2 || p.Status.Endpoints[0] != want[0] || p.Status.Endpoints[1] != want[1] || p.Status.ReadyEndpoints != 1 {
		t.Errorf("status.endpoints = %+v (ready %d), want %+v", p.Status.Endpoints, p.Status.ReadyEndpoints, want)
	}

	// The store (and so every sidecar) sees the derived endpoints.
	eventually(t, 10*time.Second, func() error {
		got, err := cp.Store.Get(ctx, ns, "db")
		if err != nil {
			return err
		}
		if len(got.ReadyEndpoints()) != 1 {
			return errors.New("store has no ready endpoint yet")
		}
		return nil
	})

	// The pod goes unready: so does the provider.
	slice.Endpoints[0].Conditions.Ready = ptr.To(false)
	if err := cp.Client.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	waitCondition(metav1.ConditionFalse, v1alpha1.ReasonNoReadyEndpoints)

	// The Service goes away.
	if err := cp.Client.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"}}); err != nil {
		t.Fatal(err)
	}
	waitCondition(metav1.ConditionFalse, v1alpha1.ReasonServiceNotFound)
}

func conditionString(c *metav1.Condition) string {
	if c == nil {
		return "<none>"
	}
	return string(c.Status) + "/" + c.Reason + ": " + c.Message
}

func TestWithControllerManager(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{ControllerManager: true})
	ctx := t.Context()
	cp.Namespace(t, ns, map[string]string{inject.KeyInject: inject.NamespaceEnabled})
	cp.ServiceAccount(t, ns, "fn")

	t.Run("a Deployment's pods are injected", func(t *testing.T) {
		labels := map[string]string{"app": "web"}
		create(t, cp, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.com/web:1"}}}},
		}})
		var pods corev1.PodList
		eventually(t, 30*time.Second, func() error {
			if err := cp.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
				return err
			}
			if len(pods.Items) != 2 {
				return errors.New("pods not created yet")
			}
			return nil
		})
		for _, p := range pods.Items {
			if p.Annotations[inject.AnnotationInjectedVersion] == "" {
				t.Errorf("pod %s (created by the ReplicaSet controller) was not injected", p.Name)
			}
		}
	})

	t.Run("a run-time registration dies with its pod", func(t *testing.T) {
		owner := pod("registrar-1", "registrar", "")
		create(t, cp, owner)
		c := &ddiclient.Client{BaseURL: cp.StreamURL, HTTP: cp.StreamHTTP(t), TokenFile: podToken(t, cp, owner)}
		reg := registry.Provider{Namespace: ns, Name: "registrar-api", Type: "http", Version: "1.0.0",
			Endpoints: []registry.Endpoint{{URL: "http://10.0.0.9:8080", Ready: true}},
			Lease:     &registry.Lease{TTL: registry.Duration(time.Hour)},
			// A sidecar names itself as owner; the control plane replaces
			// that with the pod the token belongs to.
			Owner: "registrar-1-5e1f0c2a"}
		if _, _, err := c.PutProvider(ctx, reg); err != nil {
			t.Fatalf("register: %v", err)
		}
		var obj v1alpha1.Provider
		if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "registrar-api"}, &obj); err != nil {
			t.Fatal(err)
		}
		if refs := obj.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Pod" || refs[0].UID != owner.UID {
			t.Fatalf("ownerReferences = %+v, want the registering pod", refs)
		}

		// The sidecar may not register elsewhere, nor take over another's.
		other := reg
		other.Namespace = "default"
		if _, _, err := c.PutProvider(ctx, other); !isStatus(err, http.StatusForbidden) {
			t.Errorf("register in another namespace: err = %v, want 403", err)
		}
		create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "declared"}, Spec: v1alpha1.ProviderSpec{Type: "http",
			Endpoints: []v1alpha1.Endpoint{{URL: "http://10.0.0.1", Ready: true}}}})
		takeover := reg
		takeover.Name = "declared"
		if _, _, err := c.PutProvider(ctx, takeover); !isStatus(err, http.StatusForbidden) {
			t.Errorf("overwrite a declared provider: err = %v, want 403", err)
		}

		if err := cp.Client.Delete(ctx, owner, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, func() error {
			err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "registrar-api"}, &obj)
			if apierrors.IsNotFound(err) {
				return nil
			}
			return errors.New("provider still there")
		})
	})
}

func isStatus(err error, status int) bool {
	var pe *httpapi.Problem
	return errors.As(err, &pe) && pe.Status == status
}

func intstrFromString(s string) intstr.IntOrString { return intstr.FromString(s) }

// TestStreamTLSWithSelfManagedCerts runs the stream on the controller's own
// certificate: the webhook injects its CA, the certificate names the
// Service the sidecars dial, and a sidecar with the injected CA streams.
func TestStreamTLSWithSelfManagedCerts(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{SelfManagedCerts: true})
	cp.Namespace(t, ns, map[string]string{inject.KeyInject: inject.NamespaceEnabled})
	cp.ServiceAccount(t, ns, "fn")
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "greeter"}, Spec: v1alpha1.ProviderSpec{
		Type: "http", Version: "1.2.0", Endpoints: []v1alpha1.Endpoint{{URL: "http://10.1.2.3:8080", Ready: true}}}})
	p := pod("frontend-1", "frontend", "greeter=http@^1")
	create(t, cp, p)

	ca := injectedCA(t, p)
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := cp.Client.Get(t.Context(), client.ObjectKey{Name: controller.DefaultWebhookConfigName}, &mwc); err != nil {
		t.Fatal(err)
	}
	if want := string(mwc.Webhooks[0].ClientConfig.CABundle); ca != want || ca != string(cp.StreamCA) {
		t.Errorf("%s = %q, want the webhook's caBundle %q", inject.EnvControlPlaneCA, ca, want)
	}

	t.Run("the certificate names the sidecars' control plane host", func(t *testing.T) {
		host := strings.TrimSuffix(strings.TrimPrefix(inject.DefaultControlPlaneURL, "https://"), ":7470")
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(ca))
		conn, err := tls.Dial("tcp", strings.TrimPrefix(cp.StreamURL, "https://"), &tls.Config{ServerName: host, RootCAs: pool})
		if err != nil {
			t.Fatalf("TLS to the stream as %s with the injected CA: %v", host, err)
		}
		conn.Close()
	})

	t.Run("a sidecar with the injected CA gets its bindings", func(t *testing.T) {
		list := sidecarBindings(t, sidecar.Config{ControlPlane: cp.StreamURL, CA: []byte(ca), TokenFile: podToken(t, cp, p),
			Consumer: registry.Consumer{Name: "frontend"}})
		if len(list.Bindings) != 1 || list.Bindings[0].Name != "greeter" || list.Bindings[0].Provider != "greeter" {
			t.Errorf("bindings = %+v, unresolved %+v; want greeter", list.Bindings, list.Unresolved)
		}
	})

	t.Run("refused: a client without the CA", func(t *testing.T) {
		c := &ddiclient.Client{BaseURL: cp.StreamURL, TokenFile: podToken(t, cp, p)}
		_, err := c.Stream(t.Context(), protocol.Hello{SidecarID: "probe-no-ca"})
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Errorf("stream without the CA: err = %v, want a certificate verification error", err)
		}
	})
}
