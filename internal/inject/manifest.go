package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// Manifest injects the sidecar into every pod template in a manifest: the
// transform behind `ddi inject -f FILE`.
//
// data is YAML (one or more documents separated by "---") or JSON (one
// object, which may be a List). Pods, ReplicationControllers, PodTemplates,
// Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and
// Knative Services, Configurations and Revisions are injected, and any List
// is searched; other objects pass through. Offline there is no namespace to
// consult, so every pod template is injected unless its own metadata opts
// out (ddi.dev/inject: "false"), exactly as if its namespace were labelled
// ddi.dev/inject=enabled.
//
// The output has the input's format. Documents that do not change are
// copied byte for byte; a changed document is re-encoded (keys sorted,
// comments inside it lost, its leading comments kept), and fields the
// injector does not know about, such as a Knative template's
// containerConcurrency, are kept.
func Manifest(data []byte, cfg Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("injector configuration: %w", err)
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return manifestJSON(data, cfg)
	}
	return manifestYAML(data, cfg)
}

func manifestJSON(data []byte, cfg Config) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode JSON: the input holds more than one value: put several objects in a List, or use YAML documents")
	}
	changed, err := injectObject(obj, cfg)
	if err != nil {
		return nil, err
	}
	if !changed {
		return data, nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return b.Bytes(), nil
}

func manifestYAML(data []byte, cfg Config) ([]byte, error) {
	var out bytes.Buffer
	for i, d := range splitYAML(string(data)) {
		out.WriteString(d.separator)
		body, err := injectYAMLDocument(d.body, cfg)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out.WriteString(body)
	}
	return out.Bytes(), nil
}

// injectYAMLDocument returns body, injected, or body itself when nothing
// in it changes.
func injectYAMLDocument(body string, cfg Config) (string, error) {
	j, err := yaml.YAMLToJSON([]byte(body))
	if err != nil {
		return "", fmt.Errorf("decode YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("decode YAML: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return body, nil
	}
	changed, err := injectObject(obj, cfg)
	if err != nil || !changed {
		return body, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	y, err := yaml.JSONToYAML(b.Bytes())
	if err != nil {
		return "", fmt.Errorf("encode YAML: %w", err)
	}
	return leadingComments(body) + string(y), nil
}

// yamlDocument is one document of a YAML stream and the "---" line before
// it ("" for the first).
type yamlDocument struct {
	separator, body string
}

// splitYAML cuts a YAML stream at its "---" lines, keeping every byte.
func splitYAML(s string) []yamlDocument {
	docs := []yamlDocument{{}}
	for len(s) > 0 {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line = s[:i+1]
		}
		s = s[len(line):]
		if isSeparator(line) {
			docs = append(docs, yamlDocument{separator: line})
			continue
		}
		docs[len(docs)-1].body += line
	}
	return docs
}

func isSeparator(line string) bool {
	rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "---")
	if !ok {
		return false
	}
	rest = strings.TrimSpace(rest)
	return rest == "" || strings.HasPrefix(rest, "#")
}

// leadingComments is the block of comment and blank lines that opens body.
func leadingComments(body string) string {
	n := 0
	for rest := body; len(rest) > 0; {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			break
		}
		n += len(line)
		rest = rest[len(line):]
	}
	return body[:n]
}

// templatePaths says where each kind keeps its pod template; an empty path
// means the object itself is one (its metadata and spec).
var templatePaths = map[string]struct {
	path   []string
	target target
}{
	"/Pod":                   {nil, targetPod},
	"/ReplicationController": {[]string{"spec", "template"}, targetPod},
	"/PodTemplate":           {[]string{"template"}, targetPod},
	"apps/Deployment":        {[]string{"spec", "template"}, targetPod},
	"apps/StatefulSet":       {[]string{"spec", "template"}, targetPod},
	"apps/DaemonSet":         {[]string{"spec", "template"}, targetPod},
	"apps/ReplicaSet":        {[]string{"spec", "template"}, targetPod},
	"batch/Job":              {[]string{"spec", "template"}, targetPod},
	"batch/CronJob":          {[]string{"spec", "jobTemplate", "spec", "template"}, targetPod},
	// Knative: the webhook's Pod mutation also reaches these pods, but
	// Knative validates the template first (see target).
	"serving.knative.dev/Service":       {[]string{"spec", "template"}, targetKnativeTemplate},
	"serving.knative.dev/Configuration": {[]string{"spec", "template"}, targetKnativeTemplate},
	"serving.knative.dev/Revision":      {nil, targetKnativeTemplate},
}

// injectObject injects the pod template of obj, or of each item of a List.
func injectObject(obj map[string]any, cfg Config) (bool, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	name := objectName(obj)
	if items, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		changed := false
		for i, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				continue
			}
			c, err := injectObject(m, cfg)
			if err != nil {
				return false, fmt.Errorf("%s item %d: %w", kind, i, err)
			}
			changed = changed || c
		}
		return changed, nil
	}
	group, _, found := strings.Cut(apiVersion, "/")
	if !found {
		group = ""
	}
	where, ok := templatePaths[group+"/"+kind]
	if !ok {
		return false, nil
	}
	var (
		tmpl map[string]any
		put  func()
	)
	if where.path == nil {
		tmpl = map[string]any{}
		for _, k := range []string{"metadata", "spec"} {
			if v, ok := obj[k]; ok {
				tmpl[k] = v
			}
		}
		put = func() {
			for _, k := range []string{"metadata", "spec"} {
				if v, ok := tmpl[k]; ok {
					obj[k] = v
				}
			}
		}
	} else {
		parent := obj
		for _, k := range where.path[:len(where.path)-1] {
			next, ok := parent[k].(map[string]any)
			if !ok {
				return false, nil
			}
			parent = next
		}
		last := where.path[len(where.path)-1]
		if tmpl, ok = parent[last].(map[string]any); !ok {
			return false, nil
		}
		put = func() { parent[last] = tmpl }
	}
	changed, err := injectTemplate(tmpl, cfg, where.target)
	if err != nil {
		return false, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	if changed {
		put()
	}
	return changed, nil
}

func objectName(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	if n, _ := meta["name"].(string); n != "" {
		return n
	}
	n, _ := meta["generateName"].(string)
	return n
}

// injectTemplate injects a pod template held as generic JSON, in place.
// The typed mutation is turned into a strategic merge patch and applied to
// the generic form, so fields unknown to corev1 survive and fields the
// mutation does not touch keep their exact values.
func injectTemplate(tmpl map[string]any, cfg Config, t target) (bool, error) {
	// Knative lets a template's only container go unnamed, but a
	// strategic merge patch matches containers by name: name them for the
	// merge and drop the names again afterwards.
	unnamed := nameContainers(tmpl)
	defer unnameContainers(tmpl, unnamed)
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return false, fmt.Errorf("encode pod template: %w", err)
	}
	var before corev1.PodTemplateSpec
	if err := json.Unmarshal(raw, &before); err != nil {
		return false, fmt.Errorf("read pod template: %w", err)
	}
	d := decide(map[string]string{KeyInject: NamespaceEnabled}, &corev1.Pod{ObjectMeta: before.ObjectMeta, Spec: before.Spec})
	if d.invalid != nil {
		return false, d.invalid
	}
	if !d.inject {
		return false, nil
	}
	after := before.DeepCopy()
	changed, err := inject(&after.ObjectMeta, &after.Spec, cfg, t)
	if err != nil || !changed {
		return false, err
	}
	beforeJSON, err := json.Marshal(&before)
	if err != nil {
		return false, fmt.Errorf("encode pod template: %w", err)
	}
	afterJSON, err := json.Marshal(after)
	if err != nil {
		return false, fmt.Errorf("encode pod template: %w", err)
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(beforeJSON, afterJSON, corev1.PodTemplateSpec{})
	if err != nil {
		return false, fmt.Errorf("diff pod template: %w", err)
	}
	merged, err := strategicpatch.StrategicMergePatch(raw, patch, corev1.PodTemplateSpec{})
	if err != nil {
		return false, fmt.Errorf("patch pod template: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(merged))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return false, fmt.Errorf("decode patched pod template: %w", err)
	}
	clear(tmpl)
	maps.Copy(tmpl, m)
	return true, nil
}

// unnamedPrefix names, for the length of a merge, the containers a Knative
// template leaves unnamed.
const unnamedPrefix = "ddi-unnamed-container-"

// nameContainers names every unnamed container of tmpl and returns the
// names it gave.
func nameContainers(tmpl map[string]any) map[string]bool {
	given := map[string]bool{}
	spec, _ := tmpl["spec"].(map[string]any)
	for _, list := range []string{"initContainers", "containers"} {
		cs, _ := spec[list].([]any)
		for i, c := range cs {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			if n, _ := m["name"].(string); n == "" {
				n = fmt.Sprintf("%s%s-%d", unnamedPrefix, list, i)
				m["name"] = n
				given[n] = true
			}
		}
	}
	return given
}

// unnameContainers removes the names nameContainers gave.
func unnameContainers(tmpl map[string]any, given map[string]bool) {
	if len(given) == 0 {
		return
	}
	spec, _ := tmpl["spec"].(map[string]any)
	for _, list := range []string{"initContainers", "containers"} {
		cs, _ := spec[list].([]any)
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				if n, _ := m["name"].(string); given[n] {
					delete(m, "name")
				}
			}
		}
	}
}
