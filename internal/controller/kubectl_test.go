package controller_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/kubetest"
)

// table reads path from the API server as kubectl get does: a
// meta.k8s.io Table built from the CRD's additionalPrinterColumns. It
// returns the column names (priority 0 only unless wide) and each row's
// cells by name, keyed by "namespace/name".
func table(t *testing.T, cp *kubetest.ControlPlane, path string, wide bool) ([]string, map[string]map[string]any) {
	t.Helper()
	hc, err := rest.HTTPClientFor(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimRight(cp.Config.Host, "/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s as Table: %s: %s", path, res.Status, body)
	}
	var tab metav1.Table
	if err := json.Unmarshal(body, &tab); err != nil {
		t.Fatalf("decode Table: %v", err)
	}
	var cols []string
	for _, c := range tab.ColumnDefinitions {
		if wide || c.Priority == 0 {
			cols = append(cols, c.Name)
		}
	}
	rows := map[string]map[string]any{}
	for _, r := range tab.Rows {
		var m metav1.PartialObjectMetadata
		if err := json.Unmarshal(r.Object.Raw, &m); err != nil {
			t.Fatalf("decode row object: %v", err)
		}
		cells := map[string]any{}
		for i, c := range tab.ColumnDefinitions {
			cells[c.Name] = r.Cells[i]
		}
		rows[m.Namespace+"/"+m.Name] = cells
	}
	return cols, rows
}

// events lists the Events about the object kind/name in namespace ns.
func events(t *testing.T, cp *kubetest.ControlPlane, kind, name string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := cp.Client.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// findEvent returns the first Event of evs with reason, or an error
// listing what there is.
func findEvent(evs []eventsv1.Event, reason string) (eventsv1.Event, error) {
	var seen []string
	for _, e := range evs {
		if e.Reason == reason {
			return e, nil
		}
		seen = append(seen, e.Type+"/"+e.Reason+": "+e.Note)
	}
	return eventsv1.Event{}, fmt.Errorf("no Event with reason %s; have %q", reason, seen)
}

// TestKubectlShowsStatus reads Providers and DependencySets as a person
// does with kubectl get and kubectl describe, on a real API server with the
// controller running: the printer columns, the Ready conditions (type,
// status, reason, message, observedGeneration), the explanation of an
// unresolved dependency in the condition and in an Event, and the Events of
// each transition.
func TestKubectlShowsStatus(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{})
	ctx := t.Context()
	cp.Namespace(t, ns, nil)
	ready := func(url string, ok bool) []v1alpha1.Endpoint { return []v1alpha1.Endpoint{{URL: url, Ready: ok}} }
	// pg-old is ready but outside ^15; pg is in range but not ready; so
	// db does not resolve, and the explanation names both.
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-old"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "14.1.0", Endpoints: ready("postgres://10.0.0.4:5432/app", true)}})
	pg := &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "15.2.0", Endpoints: ready("postgres://10.0.0.5:5432/app", false)}}
	create(t, cp, pg)
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache"}, Spec: v1alpha1.ProviderSpec{
		Type: "redis", Version: "7.2.0", Endpoints: ready("redis://10.0.0.6:6379", true)}})
	create(t, cp, &v1alpha1.DependencySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: v1alpha1.DependencySetSpec{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Dependencies: []v1alpha1.Dependency{
			{Alias: "db", Selector: &v1alpha1.ProviderSelector{Type: "postgresql", Version: "^15"}},
			{Alias: "cache", Provider: &v1alpha1.ProviderReference{Name: "cache"}},
		}}})

	var ds v1alpha1.DependencySet
	waitReady := func(status metav1.ConditionStatus, reason, providers string) *metav1.Condition {
		t.Helper()
		var c *metav1.Condition
		eventually(t, 20*time.Second, func() error {
			if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &ds); err != nil {
				return err
			}
			c = meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != status || c.Reason != reason || ds.Status.Providers != providers {
				return fmt.Errorf("condition %s, providers %q", conditionString(c), ds.Status.Providers)
			}
			return nil
		})
		if c.ObservedGeneration != ds.Generation || ds.Status.ObservedGeneration != ds.Generation {
			t.Errorf("observedGeneration: condition %d, status %d; want the generation %d", c.ObservedGeneration, ds.Status.ObservedGeneration, ds.Generation)
		}
		if c.LastTransitionTime.IsZero() {
			t.Errorf("Ready condition has no lastTransitionTime")
		}
		return c
	}

	// Unresolved: the condition explains which rule rejected which
	// candidate.
	c := waitReady(metav1.ConditionFalse, v1alpha1.ReasonUnresolved, "db=-,cache=shop/cache")
	for _, want := range []string{
		"1 of 2 dependencies unresolved.",
		"db (postgresql@^15):",
		"shop/pg rejected by readiness (0 of 1 endpoints ready)",
		"shop/pg-old rejected by version",
	} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("Ready message = %q, want it to contain %q", c.Message, want)
		}
	}
	if got := ds.Status.Dependencies[0]; got.Alias != "db" || got.Reason != "NotReady" || !strings.Contains(got.Message, "shop/pg-old rejected by version") {
		t.Errorf("status.dependencies[0] = %+v, want db NotReady with the explanation", got)
	}
	eventually(t, 10*time.Second, func() error {
		e, err := findEvent(events(t, cp, "DependencySet", "web"), v1alpha1.ReasonUnresolved)
		if err != nil {
			return err
		}
		if e.Type != corev1.EventTypeWarning || e.Note != c.Message {
			return fmt.Errorf("Unresolved Event %s %q, want Warning with the condition's message %q", e.Type, e.Note, c.Message)
		}
		return nil
	})

	// kubectl get: the columns a person reads, on the real API server.
	cols, rows := table(t, cp, "/apis/ddi.dev/v1alpha1/dependencysets", false)
	if want := []string{"Name", "Ready", "Resolved", "Dependencies", "Providers", "Reason", "Age"}; !slices.Equal(cols, want) {
		t.Errorf("dependencysets columns = %q, want %q", cols, want)
	}
	row := rows[ns+"/web"]
	wantRow := map[string]any{"Name": "web", "Ready": "False", "Resolved": float64(1), "Dependencies": float64(2), "Providers": "db=-,cache=shop/cache",
		"Reason": "Unresolved", "Message": c.Message}
	for k, v := range wantRow {
		if row[k] != v {
			t.Errorf("kubectl get dependencysets: %s = %#v, want %#v", k, row[k], v)
		}
	}
	cols, _ = table(t, cp, "/apis/ddi.dev/v1alpha1/providers", true)
	if want := []string{"Name", "Type", "Version", "Ready", "Endpoints", "Consumers", "Reason", "Age", "Message", "URLs", "Revision", "Traffic"}; !slices.Equal(cols, want) {
		t.Errorf("providers -o wide columns = %q, want %q", cols, want)
	}
	waitProviders := func(want map[string]map[string]any) {
		t.Helper()
		eventually(t, 20*time.Second, func() error {
			_, rows := table(t, cp, "/apis/ddi.dev/v1alpha1/providers", true)
			for name, cells := range want {
				for k, v := range cells {
					if got := rows[ns+"/"+name][k]; got != v {
						return fmt.Errorf("kubectl get providers: %s %s = %#v, want %#v", name, k, got, v)
					}
				}
			}
			return nil
		})
	}
	waitProviders(map[string]map[string]any{
		"cache":  {"Ready": "True", "Endpoints": float64(1), "Consumers": float64(1), "Reason": v1alpha1.ReasonEndpointsReady, "Message": "1 of 1 endpoints ready", "URLs": "redis://10.0.0.6:6379"},
		"pg":     {"Ready": "False", "Endpoints": float64(0), "Consumers": float64(0), "Reason": v1alpha1.ReasonNoReadyEndpoints, "Message": "none of 1 endpoints is ready"},
		"pg-old": {"Ready": "True", "Type": "postgresql", "Version": "14.1.0", "Consumers": float64(0)},
	})

	// kubectl itself, as a person runs it.
	kubectl := filepath.Join(kubetest.RequireAssets(t, "kubectl"), "kubectl")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("get", "providers,dependencysets", "-A")
	t.Logf("kubectl get providers,dependencysets -A:\n%s", out)
	for _, want := range []string{"CONSUMERS", "REASON", "PROVIDERS", "db=-,cache=shop/cache", "NoReadyEndpoints"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get providers,dependencysets -A does not show %q:\n%s", want, out)
		}
	}
	out = run("describe", "dependencyset", "-n", ns, "web")
	t.Logf("kubectl describe dependencyset -n %s web:\n%s", ns, out)
	for _, want := range []string{"shop/pg-old rejected by version", "Warning  Unresolved", "Observed Generation"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl describe dependencyset does not show %q:\n%s", want, out)
		}
	}

	// pg becomes ready: db resolves to it, the set is Ready, an Event
	// says so, and pg counts a consumer.
	if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(pg), pg); err != nil {
		t.Fatal(err)
	}
	pg.Spec.Endpoints[0].Ready = true
	if err := cp.Client.Update(ctx, pg); err != nil {
		t.Fatal(err)
	}
	c = waitReady(metav1.ConditionTrue, v1alpha1.ReasonResolved, "db=shop/pg,cache=shop/cache")
	if c.Message != "all 2 dependencies resolved" {
		t.Errorf("Ready message = %q, want all 2 dependencies resolved", c.Message)
	}
	eventually(t, 10*time.Second, func() error {
		e, err := findEvent(events(t, cp, "DependencySet", "web"), v1alpha1.ReasonResolved)
		if err == nil && e.Type != corev1.EventTypeNormal {
			err = errors.New("Resolved Event of type " + e.Type)
		}
		return err
	})
	waitProviders(map[string]map[string]any{"pg": {"Ready": "True", "Consumers": float64(1)}, "pg-old": {"Consumers": float64(0)}})
	eventually(t, 10*time.Second, func() error {
		_, err := findEvent(events(t, cp, "Provider", "pg"), v1alpha1.ReasonEndpointsReady)
		return err
	})

	// A higher version arrives: db moves to it, and an Event says from
	// where to where.
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-new"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "15.3.0", Endpoints: ready("postgres://10.0.0.7:5432/app", true)}})
	waitReady(metav1.ConditionTrue, v1alpha1.ReasonResolved, "db=shop/pg-new,cache=shop/cache")
	eventually(t, 10*time.Second, func() error {
		e, err := findEvent(events(t, cp, "DependencySet", "web"), "Rebound")
		if err != nil {
			return err
		}
		if want := "db now resolves to shop/pg-new 15.3.0 (was shop/pg 15.2.0)"; e.Note != want {
			return fmt.Errorf("Rebound Event note %q, want %q", e.Note, want)
		}
		return nil
	})
	waitProviders(map[string]map[string]any{"pg-new": {"Consumers": float64(1)}, "pg": {"Consumers": float64(0)}})
}
