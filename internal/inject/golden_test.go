package inject

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenCases are real shapes of pods and workloads. Each input
// testdata/NAME.EXT is injected with Manifest and DefaultConfig and compared
// with testdata/NAME.golden.EXT, or with itself when unchanged is set.
var goldenCases = []struct {
	file      string
	unchanged bool
}{
	{file: "knative-revision-pod.yaml"},
	{file: "openfaas-pod.yaml"},
	{file: "fission-poolmgr-pod.yaml"},
	{file: "deployment.yaml"},
	{file: "knative-service.yaml"},
	{file: "plain-container-pod.yaml"},
	{file: "istio-native-pod.yaml"},
	{file: "istio-plain-pod.yaml"},
	{file: "istio-hold-pod.yaml"},
	{file: "multi.yaml"},
	{file: "list.json"},
	{file: "already-injected.yaml", unchanged: true},
	{file: "opt-out.yaml", unchanged: true},
}

func goldenPath(file string) string {
	ext := filepath.Ext(file)
	return filepath.Join("testdata", strings.TrimSuffix(file, ext)+".golden"+ext)
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Manifest(in, DefaultConfig())
			if err != nil {
				t.Fatalf("Manifest(%s) error: %v", tc.file, err)
			}
			if tc.unchanged {
				if !bytes.Equal(got, in) {
					t.Errorf("Manifest(%s) changed the input (-in +got):\n%s", tc.file, cmp.Diff(string(in), string(got)))
				}
				return
			}
			golden := goldenPath(tc.file)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("Manifest(%s) differs from %s (-want +got):\n%s", tc.file, golden, diff)
			}
			again, err := Manifest(got, DefaultConfig())
			if err != nil {
				t.Fatalf("Manifest(injected %s) error: %v", tc.file, err)
			}
			if !bytes.Equal(again, got) {
				t.Errorf("injecting %s twice changed it (-once +twice):\n%s", tc.file, cmp.Diff(string(got), string(again)))
			}
		})
	}
}

// TestPodAgreesWithManifest proves that the webhook's path (Pod on a typed
// pod) and the offline path (Manifest) inject the same thing.
func TestPodAgreesWithManifest(t *testing.T) {
	for _, file := range []string{"knative-revision-pod.yaml", "openfaas-pod.yaml", "fission-poolmgr-pod.yaml", "plain-container-pod.yaml", "istio-native-pod.yaml"} {
		t.Run(file, func(t *testing.T) {
			pod := readPod(t, filepath.Join("testdata", file))
			changed, err := Pod(pod, DefaultConfig())
			if err != nil || !changed {
				t.Fatalf("Pod(%s) = %v, %v; want true, nil", file, changed, err)
			}
			want := readPod(t, goldenPath(file))
			if diff := cmp.Diff(podJSON(t, want), podJSON(t, pod)); diff != "" {
				t.Errorf("Pod(%s) differs from Manifest's golden output (-manifest +pod):\n%s", file, diff)
			}
		})
	}
}

func readPod(t testing.TB, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return &pod
}

func podJSON(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	b, err := json.MarshalIndent(pod, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
