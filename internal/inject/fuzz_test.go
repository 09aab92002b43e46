package inject

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// FuzzManifest runs Manifest, the transform behind `ddi inject -f FILE`,
// on fuzzed manifests seeded with the golden inputs. Whatever the input,
// it does not panic; what it injects is still YAML or JSON, and injecting
// the output again changes nothing (Manifest copies unchanged documents
// byte for byte).
func FuzzManifest(f *testing.F) {
	for _, tc := range goldenCases {
		data, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, true)
	}
	for _, s := range []string{
		"", "---\n---\n", "# only a comment\n", "{}", "[]", "kind: Pod\nspec: 7\n", "apiVersion: v1\nkind: List\nitems: [1, {kind: Pod}]\n",
		"apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    ddi.dev/dependencies: db=postgresql@^15\nspec:\n  containers:\n  - name: fn\n    image: fn\n",
		"apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      hostNetwork: true\n      containers: [{name: fn}]\n",
		"apiVersion: batch/v1\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: fn}]\n",
		`{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"fn","resources":{"limits":{"cpu":1.5e3}}}]}} {}`,
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, native bool) {
		cfg := DefaultConfig()
		cfg.NativeSidecars = native
		out, err := Manifest(data, cfg)
		if err != nil {
			return
		}
		if !bytes.Equal(out, data) {
			var v any
			if err := yaml.Unmarshal(firstDocument(out), &v); err != nil {
				t.Fatalf("Manifest output does not parse: %v\n%s", err, out)
			}
		}
		again, err := Manifest(out, cfg)
		if err != nil {
			t.Fatalf("Manifest of its own output = %v\ninput:\n%s\noutput:\n%s", err, data, out)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("Manifest is not idempotent\ninput:\n%s\nonce:\n%s\ntwice:\n%s", data, out, again)
		}
	})
}

// firstDocument returns the first YAML document of data (all of it for
// JSON).
func firstDocument(data []byte) []byte {
	if i := bytes.Index(data, []byte("\n---")); i >= 0 {
		return data[:i]
	}
	return data
}
