package servicebinding

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	sbv1 "ddi.dev/ddi/api/servicebinding/v1"
)

// Names ddi gives what it projects; uid is the ServiceBinding's UID.
const (
	// recordPrefix prefixes the workload annotation that records what a
	// binding projected, so that it can be changed and removed exactly.
	recordPrefix = "projection.servicebinding.ddi.dev/"
	// typePrefix and providerPrefix prefix the pod template annotations
	// that carry spec.type and spec.provider into the binding volume
	// (downward API), overriding the Secret's entries.
	typePrefix     = "type.servicebinding.ddi.dev/"
	providerPrefix = "provider.servicebinding.ddi.dev/"
	// volumePrefix prefixes the binding volume's name.
	volumePrefix = "servicebinding-"

	// envRoot is the variable that says where bindings are.
	envRoot = "SERVICE_BINDING_ROOT"
	// defaultRoot is SERVICE_BINDING_ROOT when a container sets none.
	defaultRoot = "/bindings"
)

// binding is what to project: a resolved ServiceBinding.
type binding struct {
	uid        string
	name       string // the directory under SERVICE_BINDING_ROOT
	secret     string
	typ        string
	provider   string
	env        []sbv1.EnvMapping
	containers []string // empty: every container
}

// record is what a binding projected into one workload, kept in its
// annotation recordPrefix+uid.
type record struct {
	// Containers maps a container's id to what was added to it.
	Containers map[string]containerRecord `json:"containers"`
	// Mapping is the mapping the projection used (nil: the default).
	Mapping *sbv1.ClusterWorkloadResourceMappingTemplate `json:"mapping,omitempty"`
}

type containerRecord struct {
	// Env are the variables added for spec.env.
	Env []string `json:"env,omitempty"`
	// Root says SERVICE_BINDING_ROOT was added (the container set none).
	Root bool `json:"root,omitempty"`
}

func volumeName(uid string) string { return volumePrefix + uid }

// container is one container of a workload, found through a mapping.
type container struct {
	id  string
	obj map[string]any
	cp  containerPath
}

// containers returns the containers m finds in obj; a container without a
// name path gets an id from its position.
func (m mapping) containersOf(obj map[string]any) ([]container, error) {
	var out []container
	for i, cp := range m.containers {
		objs, err := cp.objects(obj)
		if err != nil {
			return nil, fmt.Errorf("%s containers[%d].path: %w", m.source, i, err)
		}
		for j, c := range objs {
			id := fmt.Sprintf("#%d.%d", i, j)
			if cp.name != nil {
				if n, ok, _ := unstructured.NestedString(c, cp.name.fields()...); ok && n != "" {
					id = n
				}
			}
			out = append(out, container{id: id, obj: c, cp: cp})
		}
	}
	return out, nil
}

// project changes obj so that it carries b: the binding volume, a
// read-only mount at $SERVICE_BINDING_ROOT/<name> and the spec.env
// variables in every selected container, SERVICE_BINDING_ROOT where a
// container has none, and the type and provider overrides. Whatever b
// projected before and no longer does is removed. Projecting twice
// changes nothing. On error obj may be half changed: project a copy.
func project(obj *unstructured.Unstructured, m mapping, b binding) error {
	cs, err := m.containersOf(obj.Object)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		return fmt.Errorf("%s finds no containers in %s %s: the kind needs a ClusterWorkloadResourceMapping that locates them", m.source, obj.GetKind(), obj.GetName())
	}
	old := readRecord(obj, b.uid)
	rec := record{Containers: map[string]containerRecord{}}
	vol := volumeName(b.uid)
	for _, c := range cs {
		prev := old.Containers[c.id]
		// A container the mapping cannot name is bound whatever the
		// filter says (Workload Resource Mapping, Runtime Behavior).
		if len(b.containers) > 0 && c.cp.name != nil && !slices.Contains(b.containers, c.id) {
			if err := removeFromContainer(c, vol, prev); err != nil {
				return err
			}
			continue
		}
		env, err := envOf(c)
		if err != nil {
			return err
		}
		var cr containerRecord
		root, present := lookupEnv(env, envRoot)
		switch {
		case !present || prev.Root:
			root, cr.Root = defaultRoot, true
			env = setEnv(env, map[string]any{"name": envRoot, "value": defaultRoot})
		case !path.IsAbs(root):
			return fmt.Errorf("%s %s: container %q sets %s to %q, not an absolute path given as a value: set a literal absolute path such as %s", obj.GetKind(), obj.GetName(), c.id, envRoot, root, defaultRoot)
		}
		want := map[string]bool{}
		for i, e := range b.env {
			if _, present := lookupEnv(env, e.Name); present && !slices.Contains(prev.Env, e.Name) {
				return fmt.Errorf("spec.env[%d].name: container %q of %s %s already sets %s: choose another name", i, c.id, obj.GetKind(), obj.GetName(), e.Name)
			}
			want[e.Name] = true
			env = setEnv(env, envVar(b, e))
			cr.Env = append(cr.Env, e.Name)
		}
		for _, n := range prev.Env {
			if !want[n] {
				env = removeEnv(env, n)
			}
		}
		if err := setSlice(c.obj, c.cp.env, env); err != nil {
			return err
		}
		mounts, err := sliceAt(c.obj, c.cp.mounts)
		if err != nil {
			return err
		}
		mounts = setNamed(mounts, "name", map[string]any{"name": vol, "mountPath": path.Join(root, b.name), "readOnly": true})
		if err := setSlice(c.obj, c.cp.mounts, mounts); err != nil {
			return err
		}
		rec.Containers[c.id] = cr
	}
	vols, err := sliceAt(obj.Object, m.volumes)
	if err != nil {
		return err
	}
	vols = setNamed(vols, "name", bindingVolume(b))
	if err := setSlice(obj.Object, m.volumes, vols); err != nil {
		return err
	}
	if err := setOverrides(obj, m, b); err != nil {
		return err
	}
	if !equality.Semantic.DeepEqual(m.template, sbv1.ClusterWorkloadResourceMappingTemplate{}) {
		t := m.template
		rec.Mapping = &t
	}
	return writeRecord(obj, b.uid, rec)
}

// recordedMapping returns the mapping the binding with uid used for obj,
// and false when obj carries no projection of it or the recorded mapping
// does not compile.
func recordedMapping(obj *unstructured.Unstructured, uid string) (mapping, bool) {
	v, ok := obj.GetAnnotations()[recordPrefix+uid]
	if !ok {
		return mapping{}, false
	}
	var r record
	if json.Unmarshal([]byte(v), &r) != nil {
		return mapping{}, false
	}
	if r.Mapping == nil {
		return podSpecable(), true
	}
	m, err := compileMapping("the mapping recorded on "+obj.GetName(), *r.Mapping, "recorded mapping")
	return m, err == nil
}

// unproject removes everything the binding with uid projected into obj.
// SERVICE_BINDING_ROOT goes only when the binding added it and no other
// binding remains on the workload.
func unproject(obj *unstructured.Unstructured, m mapping, uid string) error {
	old := readRecord(obj, uid)
	cs, err := m.containersOf(obj.Object)
	if err != nil {
		return err
	}
	others := false
	for k := range obj.GetAnnotations() {
		if strings.HasPrefix(k, recordPrefix) && k != recordPrefix+uid {
			others = true
		}
	}
	vol := volumeName(uid)
	for _, c := range cs {
		prev := old.Containers[c.id]
		if others {
			prev.Root = false
		}
		if err := removeFromContainer(c, vol, prev); err != nil {
			return err
		}
	}
	vols, err := sliceAt(obj.Object, m.volumes)
	if err != nil {
		return err
	}
	if err := setSlice(obj.Object, m.volumes, removeNamed(vols, "name", vol)); err != nil {
		return err
	}
	b := binding{uid: uid}
	if err := setOverrides(obj, m, b); err != nil {
		return err
	}
	a := obj.GetAnnotations()
	delete(a, recordPrefix+uid)
	obj.SetAnnotations(nilIfEmpty(a))
	return nil
}

// removeFromContainer removes the binding's mount and the variables prev
// records from c.
func removeFromContainer(c container, vol string, prev containerRecord) error {
	mounts, err := sliceAt(c.obj, c.cp.mounts)
	if err != nil {
		return err
	}
	if err := setSlice(c.obj, c.cp.mounts, removeNamed(mounts, "name", vol)); err != nil {
		return err
	}
	env, err := envOf(c)
	if err != nil {
		return err
	}
	for _, n := range prev.Env {
		env = removeEnv(env, n)
	}
	if prev.Root {
		env = removeEnv(env, envRoot)
	}
	return setSlice(c.obj, c.cp.env, env)
}

// envVar is the variable for one spec.env entry: from the binding Secret,
// or the override itself for the type and provider entries.
func envVar(b binding, e sbv1.EnvMapping) map[string]any {
	switch {
	case e.Key == "type" && b.typ != "":
		return map[string]any{"name": e.Name, "value": b.typ}
	case e.Key == "provider" && b.provider != "":
		return map[string]any{"name": e.Name, "value": b.provider}
	}
	return map[string]any{"name": e.Name, "valueFrom": map[string]any{
		"secretKeyRef": map[string]any{"name": b.secret, "key": e.Key},
	}}
}

// bindingVolume is the projected volume of the binding Secret, with the
// type and provider overrides on top (later sources win in a projected
// volume).
func bindingVolume(b binding) map[string]any {
	sources := []any{map[string]any{"secret": map[string]any{"name": b.secret}}}
	var items []any
	if b.typ != "" {
		items = append(items, map[string]any{"path": "type", "fieldRef": map[string]any{"fieldPath": "metadata.annotations['" + typePrefix + b.uid + "']"}})
	}
	if b.provider != "" {
		items = append(items, map[string]any{"path": "provider", "fieldRef": map[string]any{"fieldPath": "metadata.annotations['" + providerPrefix + b.uid + "']"}})
	}
	if items != nil {
		sources = append(sources, map[string]any{"downwardAPI": map[string]any{"items": items}})
	}
	return map[string]any{"name": volumeName(b.uid), "projected": map[string]any{"sources": sources}}
}

// setOverrides sets (or, when empty, removes) the pod template annotations
// that carry b's type and provider.
func setOverrides(obj *unstructured.Unstructured, m mapping, b binding) error {
	a, _, err := unstructured.NestedStringMap(obj.Object, m.annotations.fields()...)
	if err != nil {
		return fmt.Errorf("%s annotations %s: %w", m.source, m.annotations, err)
	}
	if a == nil {
		a = map[string]string{}
	}
	set := func(k, v string) {
		if v == "" {
			delete(a, k)
		} else {
			a[k] = v
		}
	}
	set(typePrefix+b.uid, b.typ)
	set(providerPrefix+b.uid, b.provider)
	if len(a) == 0 {
		unstructured.RemoveNestedField(obj.Object, m.annotations.fields()...)
		return nil
	}
	return unstructured.SetNestedStringMap(obj.Object, a, m.annotations.fields()...)
}

func readRecord(obj *unstructured.Unstructured, uid string) record {
	var r record
	if v, ok := obj.GetAnnotations()[recordPrefix+uid]; ok {
		_ = json.Unmarshal([]byte(v), &r) // a damaged record removes less
	}
	return r
}

func writeRecord(obj *unstructured.Unstructured, uid string, r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[recordPrefix+uid] = string(v)
	obj.SetAnnotations(a)
	return nil
}

// projected returns the UIDs of the bindings projected into obj.
func projected(obj *unstructured.Unstructured) []string {
	var out []string
	for k := range obj.GetAnnotations() {
		if uid, ok := strings.CutPrefix(k, recordPrefix); ok {
			out = append(out, uid)
		}
	}
	return out
}

func nilIfEmpty(a map[string]string) map[string]string {
	if len(a) == 0 {
		return nil
	}
	return a
}

func envOf(c container) ([]any, error) { return sliceAt(c.obj, c.cp.env) }

// sliceAt returns the array at p in obj (nil when missing).
func sliceAt(obj map[string]any, p jsonPath) ([]any, error) {
	v, ok, err := unstructured.NestedFieldNoCopy(obj, p.fields()...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if !ok || v == nil {
		return nil, nil
	}
	s, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is a %T, not an array", p, v)
	}
	return slices.Clone(s), nil
}

// setSlice sets the array at p in obj, removing the field when empty.
func setSlice(obj map[string]any, p jsonPath, s []any) error {
	if len(s) == 0 {
		unstructured.RemoveNestedField(obj, p.fields()...)
		return nil
	}
	return unstructured.SetNestedField(obj, s, p.fields()...)
}

// lookupEnv returns the literal value of the variable name in env ("" if
// it has none) and whether env sets it.
func lookupEnv(env []any, name string) (string, bool) {
	for _, e := range env {
		if m, ok := e.(map[string]any); ok && m["name"] == name {
			v, _ := m["value"].(string)
			return v, true
		}
	}
	return "", false
}

func setEnv(env []any, v map[string]any) []any { return setNamed(env, "name", v) }

func removeEnv(env []any, name string) []any { return removeNamed(env, "name", name) }

// setNamed replaces the element of s whose key equals v's, in place, or
// appends v.
func setNamed(s []any, key string, v map[string]any) []any {
	for i, e := range s {
		if m, ok := e.(map[string]any); ok && m[key] == v[key] {
			s[i] = v
			return s
		}
	}
	return append(s, v)
}

// removeNamed removes the elements of s whose key equals name.
func removeNamed(s []any, key, name string) []any {
	return slices.DeleteFunc(s, func(e any) bool {
		m, ok := e.(map[string]any)
		return ok && m[key] == name
	})
}
