package servicebinding

import (
	"fmt"
	"reflect"

	"k8s.io/client-go/util/jsonpath"

	sbv1 "ddi.dev/ddi/api/servicebinding/v1"
)

// mapping says where a workload keeps its pod template's annotations,
// volumes and containers: a ClusterWorkloadResourceMapping's entry for the
// workload's version, or the PodSpec-able default.
type mapping struct {
	// source names the mapping in messages.
	source string
	// template is what the mapping was compiled from (empty for the
	// default), recorded with a projection so that it is removed through
	// the same mapping.
	template    sbv1.ClusterWorkloadResourceMappingTemplate
	annotations jsonPath
	volumes     jsonPath
	containers  []containerPath
}

// containerPath locates containers (a JSONPath) and, relative to each
// (Fixed JSONPaths), its name, env and volume mounts. name is nil when the
// mapping gives no name path.
type containerPath struct {
	path              *jsonpath.JSONPath
	raw               string
	name, env, mounts jsonPath
}

// objects returns the containers cp.path selects in obj: the maps inside
// obj itself, so that changing them changes obj.
func (cp containerPath) objects(obj map[string]any) ([]map[string]any, error) {
	results, err := cp.path.FindResults(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cp.raw, err)
	}
	var out []map[string]any
	for _, rs := range results {
		for _, v := range rs {
			for v.Kind() == reflect.Interface {
				v = v.Elem()
			}
			m, ok := v.Interface().(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s selects a %s, not an object", cp.raw, v.Kind())
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// compileJSONPath parses a JSONPath (the full syntax: filters, wildcards).
func compileJSONPath(s string) (*jsonpath.JSONPath, error) {
	if s == "" {
		return nil, fmt.Errorf("empty path")
	}
	jp := jsonpath.New("path").AllowMissingKeys(true)
	if err := jp.Parse("{" + s + "}"); err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return jp, nil
}

// The specification's defaults.
const (
	defaultAnnotations = ".spec.template.metadata.annotations"
	defaultVolumes     = ".spec.template.spec.volumes"
	defaultEnv         = ".env"
	defaultMounts      = ".volumeMounts"
)

// podSpecable is the mapping of a kind without a
// ClusterWorkloadResourceMapping: its pod template is at .spec.template.
func podSpecable() mapping {
	m, err := compileMapping("the PodSpec-able default mapping", sbv1.ClusterWorkloadResourceMappingTemplate{}, "default")
	if err != nil {
		panic(err) // constant input
	}
	return m
}

// mappingFor returns the mapping of version in a
// ClusterWorkloadResourceMapping: the entry for the version, else the "*"
// entry. The error names the field to fix.
func mappingFor(cwrm *sbv1.ClusterWorkloadResourceMapping, version string) (mapping, error) {
	at := -1
	for i, v := range cwrm.Spec.Versions {
		if v.Version == version {
			at = i
			break
		}
		if v.Version == "*" && at < 0 {
			at = i
		}
	}
	if at < 0 {
		return mapping{}, fmt.Errorf("ClusterWorkloadResourceMapping %s has no spec.versions entry for version %q or \"*\": add one", cwrm.Name, version)
	}
	field := fmt.Sprintf("ClusterWorkloadResourceMapping %s spec.versions[%d]", cwrm.Name, at)
	return compileMapping(field, cwrm.Spec.Versions[at], field)
}

// compileMapping parses a mapping template, applying the defaults. field
// prefixes the error's field names.
func compileMapping(source string, t sbv1.ClusterWorkloadResourceMappingTemplate, field string) (mapping, error) {
	m := mapping{source: source, template: t}
	fixed := func(name, s, def string) (jsonPath, error) {
		if s == "" {
			s = def
		}
		p, err := parsePath(s, false)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: invalid Fixed JSONPath %w", field, name, err)
		}
		return p, nil
	}
	var err error
	if m.annotations, err = fixed("annotations", t.Annotations, defaultAnnotations); err != nil {
		return mapping{}, err
	}
	if m.volumes, err = fixed("volumes", t.Volumes, defaultVolumes); err != nil {
		return mapping{}, err
	}
	cs := t.Containers
	if len(cs) == 0 {
		cs = podSpecableContainers
	}
	for i, c := range cs {
		cf := fmt.Sprintf("containers[%d]", i)
		var cp containerPath
		cp.raw = c.Path
		if cp.path, err = compileJSONPath(c.Path); err != nil {
			return mapping{}, fmt.Errorf("%s.%s.path: invalid JSONPath %w", field, cf, err)
		}
		if c.Name != "" {
			if cp.name, err = fixed(cf+".name", c.Name, ""); err != nil {
				return mapping{}, err
			}
		}
		if cp.env, err = fixed(cf+".env", c.Env, defaultEnv); err != nil {
			return mapping{}, err
		}
		if cp.mounts, err = fixed(cf+".volumeMounts", c.VolumeMounts, defaultMounts); err != nil {
			return mapping{}, err
		}
		m.containers = append(m.containers, cp)
	}
	return m, nil
}

// podSpecableContainers are the default containers of a mapping.
var podSpecableContainers = []sbv1.ClusterWorkloadResourceMappingContainer{
	{Path: ".spec.template.spec.initContainers[*]", Name: ".name"},
	{Path: ".spec.template.spec.containers[*]", Name: ".name"},
}
