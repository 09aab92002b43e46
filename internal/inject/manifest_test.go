package inject

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitYAMLKeepsEveryByte(t *testing.T) {
	for _, in := range []string{
		"",
		"a: 1\n",
		"---\na: 1\n---\nb: 2",
		"# head\na: 1\n--- # second\nb: 2\n---\n\n",
		"a: |\n  ---not a separator\n---\r\nb: 2\r\n",
	} {
		var b strings.Builder
		for _, d := range splitYAML(in) {
			b.WriteString(d.separator + d.body)
		}
		if b.String() != in {
			t.Errorf("splitYAML(%q) joined = %q", in, b.String())
		}
	}
	if n := len(splitYAML("a: 1\n---\nb: 2\n--- # c\nc: 3\n---x: 1\n")); n != 3 {
		t.Errorf("splitYAML() = %d documents, want 3", n)
	}
}

func TestLeadingComments(t *testing.T) {
	if got, want := leadingComments("# one\n\n  # two\nkind: Pod\n# not this\n"), "# one\n\n  # two\n"; got != want {
		t.Errorf("leadingComments() = %q, want %q", got, want)
	}
}

func TestManifestPassesThrough(t *testing.T) {
	for _, in := range []string{
		"",
		"# only a comment\n",
		"---\n---\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
		"apiVersion: example.com/v1\nkind: Deployment\nspec: {template: {spec: {containers: [{name: a}]}}}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
		"just a string\n",
		`{"apiVersion": "v1", "kind": "ConfigMap", "data": {"big": 12345678901234567890}}`,
	} {
		got, err := Manifest([]byte(in), DefaultConfig())
		if err != nil || string(got) != in {
			t.Errorf("Manifest(%q) = %q, %v; want the input unchanged", in, got, err)
		}
	}
}

func TestManifestErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "broken YAML", in: "kind: Pod\n  bad: [\n", want: "document 1: decode YAML"},
		{name: "broken JSON", in: `{"kind": "Pod",}`, want: "decode JSON"},
		{name: "two JSON values", in: `{"kind": "Pod"} {"kind": "Pod"}`, want: "more than one value"},
		{name: "bad annotation names the object and document", in: "kind: ConfigMap\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n" +
			"spec: {template: {metadata: {annotations: {ddi.dev/log-level: loud}}, spec: {containers: [{name: web}]}}}\n",
			want: `document 2: Deployment "web": annotation ddi.dev/log-level: "loud" is not one of`},
		{name: "bad opt-in value", in: "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {ddi.dev/inject: \"yes\"}}\nspec: {containers: [{name: a}]}\n",
			want: `Pod "p": pod label ddi.dev/inject has the value "yes"`},
		{name: "list item", in: `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},` +
			`"spec": {"template": {"metadata": {"annotations": {"ddi.dev/sidecar-port": "8012"}}, "spec": {"containers": [{"name": "a"}]}}}}]}`,
			want: `List item 0: Job "j": annotation ddi.dev/sidecar-port: 8012 is reserved by Knative`},
		{name: "type mismatch", in: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: {name: a}}\n",
			want: `Pod "p": read pod template`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Manifest([]byte(tt.in), DefaultConfig())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Manifest() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestManifestKeepsUnknownFieldsAndNumbers(t *testing.T) {
	in := `{"apiVersion": "serving.knative.dev/v1", "kind": "Configuration", "metadata": {"name": "c"},
"spec": {"template": {"spec": {"containerConcurrency": 12345678901234567, "responseStartTimeoutSeconds": 30,
"containers": [{"image": "fn:1", "futureField": {"x": true}}]}}}}`
	got, err := Manifest([]byte(in), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"containerConcurrency": 12345678901234567`, `"responseStartTimeoutSeconds": 30`, `"futureField": {`, `"name": "ddi-sidecar"`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("Manifest() output lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "ddi-unnamed") || strings.Count(string(got), `"name": "`) < 2 {
		t.Errorf("Manifest() left a placeholder name or lost the sidecar:\n%s", got)
	}
}

func TestManifestDoesNotEscapeSelectors(t *testing.T) {
	in := `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {"ddi.dev/dependencies": "db=postgresql@>=15 <16"}},
"spec": {"containers": [{"name": "a"}]}}`
	got, err := Manifest([]byte(in), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `"db=postgresql@>=15 <16"`) {
		t.Errorf("Manifest() escaped the selector:\n%s", got)
	}
}

func TestManifestKnativeRevision(t *testing.T) {
	in := "apiVersion: serving.knative.dev/v1\nkind: Revision\nmetadata:\n  name: r\nspec:\n  containerConcurrency: 0\n  containers:\n  - image: fn:1\n"
	got, err := Manifest([]byte(in), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	out := string(got)
	for _, want := range []string{"kind: Revision", "containerConcurrency: 0", "name: ddi-sidecar", "ddi.dev/injected-version: v0.1.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("Manifest(Revision) lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "initContainers") || strings.Contains(out, EnvPodName) {
		t.Errorf("Manifest(Revision) used a native sidecar or env fieldRef, which Knative refuses:\n%s", out)
	}
	if diff := cmp.Diff(got, mustManifest(t, got)); diff != "" {
		t.Errorf("Manifest(Revision) twice differs:\n%s", diff)
	}
}

func mustManifest(t *testing.T, in []byte) []byte {
	t.Helper()
	out, err := Manifest(in, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return out
}
