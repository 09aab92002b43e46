package controller_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ddi.dev/ddi/api/v1alpha1"
	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/kubetest"
)

// TestControllerMetrics: one plain-HTTP scrape of the controller's metrics
// port carries controller-runtime's metrics and the control plane's, with
// names promlint accepts.
func TestControllerMetrics(t *testing.T) {
	addr := make(chan string, 1)
	cp := kubetest.RunControlPlane(t, kubetest.Options{Controller: func(o *controller.Options) {
		o.MetricsAddr = "127.0.0.1:0"
		o.MetricsListening = func(a string) { addr <- a }
	}})
	var url string
	select {
	case a := <-addr:
		url = "http://" + a + "/metrics"
	case <-time.After(30 * time.Second):
		t.Fatal("the metrics listener did not start")
	}
	cp.Namespace(t, ns, nil)
	create(t, cp, &v1alpha1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"}, Spec: v1alpha1.ProviderSpec{
		Type: "postgresql", Version: "15.2.0", Endpoints: []v1alpha1.Endpoint{{URL: "postgres://10.0.0.5:5432/app", Ready: true}}}})

	var body string
	eventually(t, 20*time.Second, func() error {
		res, err := http.Get(url)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		body = string(b)
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s = %d", url, res.StatusCode)
		}
		for _, want := range []string{
			`controller_runtime_reconcile_total{controller="provider"`, // controller-runtime's registry
			"ddi_controlplane_providers 1",                             // the control plane's, after the store listed pg
			"ddi_controlplane_streams 0",
			"go_goroutines", // once: the control plane's Go collector is left out
		} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("metrics lack %q", want)
			}
		}
		return nil
	})
	if n := strings.Count(body, "\ngo_goroutines "); n != 1 {
		t.Errorf("go_goroutines appears %d times, want once", n)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "ddi_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		} else {
			t.Logf("promlint (not ddi's own metric): %s: %s", p.Metric, p.Text)
		}
	}
}
