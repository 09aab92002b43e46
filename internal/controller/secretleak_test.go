package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/leaktest"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/sidecar"
)

// TestSecretsDoNotLeakOnKubernetes puts secrets of known, unique values
// (canaries) behind a Provider's secretRef, rotates one, and registers a
// provider with an inline secret through a sidecar; then it looks for the
// canaries everywhere a secret must not go: the controller's debug log,
// both sidecars' debug logs, every Event (core and events.k8s.io), every
// Provider and DependencySet, every ConfigMap, the controller's and the
// sidecars' metrics, and the API and binding files of a pod outside the
// provider's scope. The pod in scope must receive every canary, so that
// they were in play.
func TestSecretsDoNotLeakOnKubernetes(t *testing.T) {
	canaries := map[string]string{
		"db username":         leaktest.Canary(),
		"db password":         leaktest.Canary(),
		"rotated db password": leaktest.Canary(),
		"registered password": leaktest.Canary(),
	}
	var ctrlLog leaktest.Buffer
	cp := kubetest.RunControlPlane(t, kubetest.Options{
		Logger:     slog.New(slog.NewTextHandler(&ctrlLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Controller: func(o *controller.Options) { o.SecretPoll = 500 * time.Millisecond },
	})
	ctx := t.Context()
	cp.Namespace(t, ns, nil)
	cp.ServiceAccount(t, ns, "fn")

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-creds"},
		Data: map[string][]byte{"username": []byte(canaries["db username"]), "password": []byte(canaries["db password"])}}
	create(t, cp, sec)
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "15.4.0",
		Endpoints: []v1alpha1.Endpoint{{URL: "postgresql://10.1.2.3:5432/app", Ready: true}},
		SecretRef: &v1alpha1.SecretReference{Name: "db-creds"},
		Scope:     &v1alpha1.Scope{Workloads: []string{"orders"}},
	}})
	// The same Secret through a reference to a key it lacks: an error
	// whose text must not carry the keys it has.
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "broken"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "15.4.0",
		Endpoints: []v1alpha1.Endpoint{{URL: "postgresql://10.1.2.4:5432/app", Ready: true}},
		SecretRef: &v1alpha1.SecretReference{Name: "db-creds", Keys: []string{"password", "missing"}},
		Scope:     &v1alpha1.Scope{Workloads: []string{"orders"}},
	}})
	// orders is in db's scope; other asks for db too, and is not.
	// cache is registered below, through orders' sidecar, for orders only.
	orders, other := pod("orders-1", "orders", "db=db;broken=broken;cache=cache"), pod("other-1", "other", "db=db;cache=cache")
	for _, p := range []*corev1.Pod{orders, other} {
		create(t, cp, p)
	}
	for _, app := range []string{"orders", "other"} {
		create(t, cp, &v1alpha1.DependencySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app}, Spec: v1alpha1.DependencySetSpec{
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": app}},
			Dependencies: []v1alpha1.Dependency{
				{Alias: "primary", Provider: &v1alpha1.ProviderReference{Name: "db"}},
				{Alias: "session", Provider: &v1alpha1.ProviderReference{Name: "cache"}},
			},
		}})
	}

	var ordersLog, otherLog leaktest.Buffer
	ordersSC := startPodSidecar(t, cp, orders, &ordersLog)
	otherSC := startPodSidecar(t, cp, other, &otherLog)

	// A run-time registration with an inline secret, through orders'
	// sidecar: the store keeps the value in a Secret, not in the Provider.
	code, body := httpCall(t, nil, http.MethodPut, ordersSC.addr+"/v1/providers/cache",
		`{"type":"redis","version":"7.2.0","endpoints":[{"url":"redis://10.1.2.5:6379"}],"secret":{"password":"`+canaries["registered password"]+`"},"scope":{"workloads":["orders"]}}`)
	if code != http.StatusCreated {
		t.Fatalf("PUT orders /v1/providers/cache = %d %s, want 201", code, body)
	}

	// orders receives every canary, including the rotated password, in
	// files others cannot read.
	for _, f := range []struct{ path, want string }{
		{path: "db/username", want: canaries["db username"]},
		{path: "db/password", want: canaries["db password"]},
		{path: "primary/password", want: canaries["db password"]},
		{path: "cache/password", want: canaries["registered password"]},
		{path: "session/password", want: canaries["registered password"]},
	} {
		path := filepath.Join(ordersSC.root, f.path)
		waitContent(t, path, f.want)
		if fi, err := os.Stat(path); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("mode of %s = %v, want no access for others", path, fi.Mode().Perm())
		}
	}
	sec.Data["password"] = []byte(canaries["rotated db password"])
	if err := cp.Client.Update(ctx, sec); err != nil {
		t.Fatalf("rotate the password: %v", err)
	}
	waitContent(t, filepath.Join(ordersSC.root, "db", "password"), canaries["rotated db password"])

	var ordersList, otherList bindingList
	getJSON(t, ordersSC.addr+"/v1/bindings", &ordersList)
	if u := unresolvedReason(ordersList, "broken"); !strings.Contains(u, "missing") {
		t.Errorf("orders: reason of broken = %q, want the missing key named", u)
	}
	getJSON(t, otherSC.addr+"/v1/bindings", &otherList)
	if len(otherList.Bindings) != 0 || len(otherList.Unresolved) != 4 {
		t.Errorf("other: bindings %+v, unresolved %+v; want none bound and db, cache, primary, session unresolved (out of scope)", otherList.Bindings, otherList.Unresolved)
	}

	// The controller's status and Events have caught up once both
	// DependencySets report their resolution and other's Unresolved
	// Event is out.
	eventually(t, 20*time.Second, func() error {
		for _, app := range []string{"orders", "other"} {
			var ds v1alpha1.DependencySet
			if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: app}, &ds); err != nil {
				return err
			}
			if ds.Status.ObservedGeneration != ds.Generation || ds.Status.DependencyCount != 2 {
				return fmt.Errorf("DependencySet %s: status not observed yet", app)
			}
		}
		var evs eventsv1.EventList
		if err := cp.Client.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "DependencySet" && e.Regarding.Name == "other" && e.Reason == v1alpha1.ReasonUnresolved {
				return nil
			}
		}
		return errors.New("no Unresolved Event for DependencySet other yet")
	})

	var sources []leakSource
	add := func(name string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode %s: %v", name, err)
		}
		sources = append(sources, leakSource{name: name, text: string(b)})
	}
	for _, l := range []struct {
		name string
		list client.ObjectList
	}{
		{name: "core Events", list: &corev1.EventList{}},
		{name: "events.k8s.io Events", list: &eventsv1.EventList{}},
		{name: "ConfigMaps", list: &corev1.ConfigMapList{}},
		{name: "Providers", list: unstructuredList("ProviderList")},
		{name: "DependencySets", list: unstructuredList("DependencySetList")},
	} {
		if err := cp.Client.List(ctx, l.list); err != nil {
			t.Fatalf("list %s: %v", l.name, err)
		}
		add(l.name+" (all namespaces)", l.list)
	}
	add("other GET /v1/bindings", otherList)
	// orders may read the secrets, but not in the reasons of what it
	// lacks (broken's missing key).
	add("orders GET /v1/bindings (unresolved)", ordersList.Unresolved)
	for _, name := range []string{"db", "primary", "cache", "session"} {
		code, body := httpCall(t, nil, http.MethodGet, otherSC.addr+"/v1/bindings/"+name, "")
		if code != http.StatusNotFound {
			t.Errorf("other GET /v1/bindings/%s = %d %s, want 404", name, code, body)
		}
		sources = append(sources, leakSource{name: "other GET /v1/bindings/" + name, text: body})
	}
	sources = append(sources, leakSource{name: "other's binding files", text: leaktest.TreeText(t, otherSC.root)})
	for _, m := range []struct {
		name, url string
		hc        *http.Client
	}{
		{name: "controller /metrics", url: cp.StreamURL + "/metrics", hc: cp.StreamHTTP(t)},
		{name: "orders sidecar /metrics", url: ordersSC.addr + "/metrics"},
		{name: "other sidecar /metrics", url: otherSC.addr + "/metrics"},
	} {
		code, body := httpCall(t, m.hc, http.MethodGet, m.url, "")
		if code != http.StatusOK || !strings.Contains(body, "# TYPE") {
			t.Errorf("GET %s = %d, want 200 with metrics", m.url, code)
		}
		sources = append(sources, leakSource{name: m.name, text: body})
	}
	// The store made a Secret for the inline secret, in ddi's namespace.
	var inline corev1.SecretList
	if err := cp.Client.List(ctx, &inline, client.InNamespace(kubetest.SystemNamespace)); err != nil {
		t.Fatal(err)
	}
	if !secretHolds(inline, canaries["registered password"]) {
		t.Errorf("Secrets of %s hold no registered password, want the inline Secret of provider cache", kubetest.SystemNamespace)
	}

	ordersSC.stop()
	otherSC.stop()
	// other's sidecar has nothing to write at debug level: it has no
	// binding. client-go and controller-runtime log through process-wide
	// loggers that the first controller.Run of the test binary sets: their
	// lines (Events recorded, reflectors) reach this log only when this
	// test runs first, as with -run TestSecretsDoNotLeakOnKubernetes.
	if !strings.Contains(ctrlLog.String(), "Event occurred") {
		t.Log("the controller log holds ddi's own lines only: client-go and controller-runtime log to the logger of an earlier test of this binary")
	}
	for _, l := range []struct {
		name      string
		buf       *leaktest.Buffer
		wantDebug bool
	}{
		{name: "controller log", buf: &ctrlLog, wantDebug: true},
		{name: "orders sidecar log", buf: &ordersLog, wantDebug: true},
		{name: "other sidecar log", buf: &otherLog},
	} {
		text := l.buf.String()
		if l.wantDebug && !strings.Contains(text, "level=DEBUG") {
			t.Errorf("%s has no debug lines, want it captured at debug level", l.name)
		}
		sources = append(sources, leakSource{name: l.name, text: text})
	}

	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			for what, c := range canaries {
				if form, at := leaktest.Find(src.text, c); form != "" {
					t.Errorf("%s holds the %s (%s): %q, want no secret value", src.name, what, form, at)
				}
			}
		})
	}
}

// leakSource is text that must hold no secret.
type leakSource struct{ name, text string }

func secretHolds(list corev1.SecretList, value string) bool {
	for _, s := range list.Items {
		for _, v := range s.Data {
			if string(v) == value {
				return true
			}
		}
	}
	return false
}

func unstructuredList(kind string) *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
	return l
}

func unresolvedReason(l bindingList, name string) string {
	for _, u := range l.Unresolved {
		if u.Name == name {
			return u.Reason
		}
	}
	return ""
}

// podSidecar is a sidecar serving p with p's token, as injected.
type podSidecar struct {
	addr, root string
	stop       func()
}

// startPodSidecar runs a sidecar for p that logs to w at debug level, and
// waits for its first snapshot.
func startPodSidecar(t *testing.T, cp *kubetest.ControlPlane, p *corev1.Pod, w io.Writer) *podSidecar {
	t.Helper()
	root := t.TempDir()
	sc, err := sidecar.New(sidecar.Config{ControlPlane: cp.StreamURL, CA: cp.StreamCA, TokenFile: podToken(t, cp, p), BindingRoot: root,
		Consumer: registry.Consumer{Namespace: p.Namespace, Name: p.Labels["app.kubernetes.io/name"]}},
		slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
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
	var once sync.Once
	s := &podSidecar{addr: "http://" + ln.Addr().String(), root: root, stop: func() { once.Do(func() { cancel(); <-done }) }}
	t.Cleanup(s.stop)
	eventually(t, 20*time.Second, func() error {
		if code, body := httpCall(t, nil, http.MethodGet, s.addr+"/readyz", ""); code != http.StatusOK {
			return fmt.Errorf("sidecar of %s: /readyz = %d %s", p.Name, code, body)
		}
		return nil
	})
	return s
}

// httpCall sends a JSON body (if any) to url with hc (nil: the default
// client) and returns the status and body.
func httpCall(t *testing.T, hc *http.Client, method, url, body string) (int, string) {
	t.Helper()
	if hc == nil {
		hc = http.DefaultClient
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, body := httpCall(t, nil, http.MethodGet, url, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %s, want 200", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s = %s: %v", url, body, err)
	}
}

// waitContent waits up to 20s for path to hold want.
func waitContent(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q (%v) after 20s, want %q", path, b, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
