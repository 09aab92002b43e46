package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The tests share one API server and etcd (envtest), started on first use
// and stopped by TestMain. The binaries come from hack/kube-bins.sh:
// $KUBEBUILDER_ASSETS, else <repo>/.cache/kube/v1.37.2.
var (
	clusterOnce sync.Once
	clusterEnv  *envtest.Environment
	clusterCfg  *rest.Config
	clusterCl   client.WithWatch
	clusterErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if clusterEnv != nil {
		if err := clusterEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}
	os.Exit(code)
}

func repoRoot() string {
	return filepath.Join("..", "..", "..")
}

// cluster returns a client of the test API server, starting it on first
// use. The ddi CRDs from deploy/crd are installed.
func cluster(t *testing.T) client.WithWatch {
	t.Helper()
	clusterOnce.Do(func() {
		assets := os.Getenv("KUBEBUILDER_ASSETS")
		if assets == "" {
			assets = filepath.Join(repoRoot(), ".cache", "kube", "v1.37.2")
		}
		for _, bin := range []string{"kube-apiserver", "etcd"} {
			if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
				clusterErr = fmt.Errorf("%s is missing from %s: build the Kubernetes binaries with hack/kube-bins.sh (KUBEBUILDER_ASSETS=$(hack/kube-bins.sh | tail -1))", bin, assets)
				return
			}
		}
		env := &envtest.Environment{
			BinaryAssetsDirectory: assets,
			CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "deploy", "crd")},
			ErrorIfCRDPathMissing: true,
		}
		start := time.Now()
		cfg, err := env.Start()
		if err != nil {
			clusterErr = fmt.Errorf("start envtest: %w", err)
			return
		}
		clusterEnv, clusterCfg = env, cfg
		fmt.Fprintf(os.Stderr, "envtest API server up in %s\n", time.Since(start).Round(time.Millisecond))
		clusterCl, clusterErr = NewClient(cfg)
	})
	if clusterErr != nil {
		t.Fatalf("test cluster: %v", clusterErr)
	}
	return clusterCl
}

// ensureNamespace creates a namespace unless it exists.
func ensureNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}
