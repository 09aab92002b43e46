package controller_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/registry"
)

// knativeObject is a Knative Service or Revision of namespace ns.
func knativeObject(kind, name string, annotations map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("serving.knative.dev/v1")
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetAnnotations(annotations)
	return u
}

// setKnativeStatus writes the status Knative's controller would write
// for greeter: ready at its address, the latest ready revision, and the
// traffic split (revision name, percent pairs).
func setKnativeStatus(t *testing.T, cp *kubetest.ControlPlane, latest string, split ...any) {
	t.Helper()
	ksvc := knativeObject("Service", "greeter", nil)
	if err := cp.Client.Get(t.Context(), client.ObjectKeyFromObject(ksvc), ksvc); err != nil {
		t.Fatal(err)
	}
	var traffic []any
	for i := 0; i+1 < len(split); i += 2 {
		traffic = append(traffic, map[string]any{"revisionName": split[i], "percent": int64(split[i+1].(int)), "latestRevision": split[i] == latest})
	}
	ksvc.Object["status"] = map[string]any{
		"address":                   map[string]any{"url": "http://greeter.shop.svc.cluster.local"},
		"url":                       "http://greeter.shop.example.com",
		"latestReadyRevisionName":   latest,
		"latestCreatedRevisionName": latest,
		"traffic":                   traffic,
		"conditions": []any{
			map[string]any{"type": "Ready", "status": "True"},
			map[string]any{"type": "ConfigurationsReady", "status": "True"},
			map[string]any{"type": "RoutesReady", "status": "True"},
		},
	}
	if err := cp.Client.Status().Update(t.Context(), ksvc); err != nil {
		t.Fatalf("update greeter's Knative status: %v", err)
	}
}

// TestProviderFollowsKnativeRevisions runs the real API server and
// controller, first without Knative's CRDs: the controller starts and
// reconciles a Provider with endpoints, and a Provider on a Knative
// Service says ServiceNotFound. Then the CRDs appear and the test plays
// Knative's controller (Revisions with a ddi.dev/version annotation, the
// Service's status): without any edit of the Provider, its status and the
// binding a real sidecar serves follow the revision that receives the
// most traffic, its version and the split, within seconds of each change.
// spec.version, once set, wins.
func TestProviderFollowsKnativeRevisions(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{Controller: func(o *controller.Options) {
		o.KnativeDiscovery = 500 * time.Millisecond
	}})
	ctx := t.Context()
	cp.Namespace(t, ns, nil)
	cp.ServiceAccount(t, ns, "fn")

	getProvider := func(name string) (*v1alpha1.Provider, error) {
		var p v1alpha1.Provider
		err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p)
		return &p, err
	}
	waitReady := func(name, status, reason string) *v1alpha1.Provider {
		t.Helper()
		var p *v1alpha1.Provider
		eventually(t, 20*time.Second, func() error {
			var err error
			if p, err = getProvider(name); err != nil {
				return err
			}
			c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || string(c.Status) != status || c.Reason != reason {
				return fmt.Errorf("provider %s: condition %s, want %s/%s", name, conditionString(c), status, reason)
			}
			return nil
		})
		return p
	}

	// No Knative: the controller runs, and reconciles what it can.
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"}, Spec: v1alpha1.ProviderSpec{
		Type: "http", Version: "1.2.0", Endpoints: []v1alpha1.Endpoint{{URL: "http://10.0.0.9:8080", Ready: true}}}})
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "greeter"}, Spec: v1alpha1.ProviderSpec{
		Type: "http", ServiceRef: &v1alpha1.ServiceReference{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "greeter"}}})
	if p := waitReady("plain", "True", v1alpha1.ReasonEndpointsReady); p.Status.Version != "1.2.0" {
		t.Errorf("provider plain: status.version = %q, want spec.version 1.2.0", p.Status.Version)
	}
	waitReady("greeter", "False", v1alpha1.ReasonServiceNotFound)

	// Knative Serving is installed: its Service and Revision CRDs.
	cp.InstallKnative(t)
	create(t, cp, knativeObject("Revision", "greeter-00001", map[string]string{v1alpha1.AnnotationVersion: "1.0.0"}))
	ksvc := knativeObject("Service", "greeter", nil)
	ksvc.Object["spec"] = map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]any{v1alpha1.AnnotationVersion: "1.0.0"}}}}
	create(t, cp, ksvc)
	setKnativeStatus(t, cp, "greeter-00001", "greeter-00001", 100)

	web := pod("web-1", "web", "greeter=greeter")
	create(t, cp, web)
	sc := startPodSidecar(t, cp, web, io.Discard)

	// check waits until the Provider's status and the sidecar's binding
	// show version, revision and traffic, and returns how long that took.
	check := func(what, version, revision, traffic string) time.Duration {
		t.Helper()
		start := time.Now()
		eventually(t, 10*time.Second, func() error {
			p, err := getProvider("greeter")
			if err != nil {
				return err
			}
			if st := p.Status; st.Version != version || st.Revision != revision || st.KnativeTraffic != traffic {
				return fmt.Errorf("provider status: version %q revision %q traffic %q, want %q %q %q", st.Version, st.Revision, st.KnativeTraffic, version, revision, traffic)
			}
			if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("provider not ready: %s", conditionString(c))
			}
			resp, err := http.Get(sc.addr + "/v1/bindings/greeter")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var b registry.Binding
			if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
				return fmt.Errorf("binding: %d %w", resp.StatusCode, err)
			}
			if b.Version != version || b.Config["knative-revision"] != revision || b.Config["knative-traffic"] != traffic {
				return fmt.Errorf("binding: version %q config %v, want %q, knative-revision %q, knative-traffic %q", b.Version, b.Config, version, revision, traffic)
			}
			if len(b.Endpoints) != 1 || b.Endpoints[0].URL != "http://greeter.shop.svc.cluster.local" {
				return fmt.Errorf("binding endpoints %v, want the Knative Service's address", b.Endpoints)
			}
			return nil
		})
		d := time.Since(start)
		t.Logf("%s: provider status and binding followed after %s", what, d.Round(time.Millisecond))
		return d
	}
	check("Knative installed, first revision ready", "1.0.0", "greeter-00001", "100% greeter-00001 1.0.0")

	// A second revision takes 80% of the traffic: it is the primary, and
	// the binding says the split.
	create(t, cp, knativeObject("Revision", "greeter-00002", map[string]string{v1alpha1.AnnotationVersion: "2.0.0"}))
	setKnativeStatus(t, cp, "greeter-00002", "greeter-00002", 80, "greeter-00001", 20)
	check("80/20 split to the new revision", "2.0.0", "greeter-00002", "80% greeter-00002 2.0.0, 20% greeter-00001 1.0.0")

	// The split turns: the old revision receives most again, and the
	// binding's version goes back with it.
	setKnativeStatus(t, cp, "greeter-00002", "greeter-00002", 30, "greeter-00001", 70)
	check("30/70 split", "1.0.0", "greeter-00001", "70% greeter-00001 1.0.0, 30% greeter-00002 2.0.0")

	// All traffic to the latest revision.
	setKnativeStatus(t, cp, "greeter-00002", "greeter-00002", 100)
	check("the new revision takes all traffic", "2.0.0", "greeter-00002", "100% greeter-00002 2.0.0")

	// A revision without a valid version: no version, said in the
	// condition.
	create(t, cp, knativeObject("Revision", "greeter-00003", map[string]string{v1alpha1.AnnotationVersion: "three"}))
	setKnativeStatus(t, cp, "greeter-00003", "greeter-00003", 100)
	check("a revision whose version is not semantic", "", "greeter-00003", "100% greeter-00003 -")
	if p, err := getProvider("greeter"); err != nil {
		t.Fatal(err)
	} else if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); c == nil || !strings.Contains(c.Message, `"three", which is not a semantic version`) {
		t.Errorf("Ready condition %s, want its message to name the bad ddi.dev/version", conditionString(c))
	}

	// The Service names a revision that cannot be read yet: it is read
	// again by itself (revisionRetry), with no further Service change.
	setKnativeStatus(t, cp, "greeter-00004", "greeter-00004", 100)
	check("a revision not readable yet", "", "greeter-00004", "100% greeter-00004 -")
	create(t, cp, knativeObject("Revision", "greeter-00004", map[string]string{v1alpha1.AnnotationVersion: "4.0.0"}))
	check("the revision readable", "4.0.0", "greeter-00004", "100% greeter-00004 4.0.0")

	// Nobody edited the Provider.
	if p, err := getProvider("greeter"); err != nil || p.Generation != 1 {
		t.Errorf("provider greeter generation %d, %v; want 1: no edit of its spec", p.Generation, err)
	}

	// spec.version, when set, wins over the revision's.
	p, err := getProvider("greeter")
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Version = "3.1.0"
	if err := cp.Client.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	check("spec.version set", "3.1.0", "greeter-00004", "100% greeter-00004 4.0.0")

	// And the Provider with endpoints was never disturbed.
	if p, err := getProvider("plain"); err != nil || p.Status.Version != "1.2.0" {
		t.Errorf("provider plain: %v, %v; want status.version 1.2.0", p.Status, err)
	}
}
