package servicebinding

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	sbv1 "ddi.dev/ddi/api/servicebinding/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden projects bindings into workloads from testdata and compares
// the result with testdata/<name>.golden.yaml (go test -update rewrites
// them); projecting the result again must change nothing, and removing the
// binding must give the input back.
func TestGolden(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		template *sbv1.ClusterWorkloadResourceMappingTemplate // nil: PodSpec-able
		binding  binding
	}{
		{
			name: "deployment", file: "deployment.yaml",
			binding: binding{uid: "6f1c2c1e-0000-4000-8000-000000000001", name: "db", secret: "orders-db-credentials",
				typ: "postgresql", provider: "acme", env: []sbv1.EnvMapping{{Name: "DB_PASSWORD", Key: "password"}, {Name: "DB_TYPE", Key: "type"}},
				containers: []string{"orders", "migrate"}},
		},
		{
			name: "cronjob", file: "cronjob.yaml",
			template: &sbv1.ClusterWorkloadResourceMappingTemplate{
				Version:     "*",
				Annotations: ".spec.jobTemplate.spec.template.metadata.annotations",
				Containers: []sbv1.ClusterWorkloadResourceMappingContainer{
					{Path: ".spec.jobTemplate.spec.template.spec.containers[*]", Name: ".name"},
					{Path: ".spec.jobTemplate.spec.template.spec.initContainers[*]", Name: ".name"},
				},
				Volumes: ".spec.jobTemplate.spec.template.spec.volumes",
			},
			binding: binding{uid: "6f1c2c1e-0000-4000-8000-000000000002", name: "reports-db", secret: "reports"},
		},
		{
			name: "function", file: "function.yaml",
			template: &sbv1.ClusterWorkloadResourceMappingTemplate{
				Version:     "v1",
				Annotations: ".spec.run.annotations",
				Containers:  []sbv1.ClusterWorkloadResourceMappingContainer{{Path: `.spec.run.containers[?(@.name=="fn")]`, Name: ".name"}},
				Volumes:     ".spec.run.volumes",
			},
			binding: binding{uid: "6f1c2c1e-0000-4000-8000-000000000003", name: "cache", secret: "redis", typ: "redis"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := readObject(t, filepath.Join("testdata", tt.file))
			m := podSpecable()
			if tt.template != nil {
				var err error
				if m, err = compileMapping(tt.name, *tt.template, tt.name); err != nil {
					t.Fatal(err)
				}
			}
			out := in.DeepCopy()
			if err := project(out, m, tt.binding); err != nil {
				t.Fatal(err)
			}
			got, err := yaml.Marshal(out.Object)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("project(%s) differs from %s (-want +got):\n%s", tt.file, golden, diff)
			}

			again := out.DeepCopy()
			if err := project(again, m, tt.binding); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(out.Object, again.Object); diff != "" {
				t.Errorf("projecting twice changed %s (-once +twice):\n%s", tt.file, diff)
			}
			back, ok := recordedMapping(out, tt.binding.uid)
			if !ok {
				t.Fatalf("%s carries no record of the projection", golden)
			}
			if err := unproject(out, back, tt.binding.uid); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(in.Object, out.Object); diff != "" {
				t.Errorf("removing the binding from %s did not give the input back (-input +removed):\n%s", golden, diff)
			}
		})
	}
}

func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}
