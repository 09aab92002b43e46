package servicebinding

import (
	"errors"
	"fmt"
	"strings"
)

// jsonPath is a parsed Restricted JSONPath (the specification's subset):
// child operators, .name or ['name'], and the wildcard [*] where allowed.
type jsonPath []segment

// segment is one step of a jsonPath: a field, or every element of an
// array.
type segment struct {
	field string
	all   bool
}

func (p jsonPath) String() string {
	var b strings.Builder
	for _, s := range p {
		if s.all {
			b.WriteString("[*]")
		} else {
			b.WriteString("['" + s.field + "']")
		}
	}
	return b.String()
}

// parsePath parses a Restricted JSONPath. A fixed path (wildcard false)
// must not contain [*].
func parsePath(s string, wildcard bool) (jsonPath, error) {
	if s == "" {
		return nil, errors.New("empty path")
	}
	var p jsonPath
	for i := 0; i < len(s); {
		switch {
		case s[i] == '.':
			j := i + 1
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				if !fieldChar(s[j]) {
					return nil, fmt.Errorf("%q: character %q at offset %d is not allowed in a field name (use ['...'])", s, s[j], j)
				}
				j++
			}
			if j == i+1 {
				return nil, fmt.Errorf("%q: empty field name at offset %d", s, i)
			}
			p = append(p, segment{field: s[i+1 : j]})
			i = j
		case strings.HasPrefix(s[i:], "[*]"):
			if !wildcard {
				return nil, fmt.Errorf("%q: [*] is allowed only in a container path", s)
			}
			p = append(p, segment{all: true})
			i += 3
		case strings.HasPrefix(s[i:], "['"):
			end := strings.Index(s[i+2:], "']")
			if end <= 0 {
				return nil, fmt.Errorf("%q: unterminated or empty ['...'] at offset %d", s, i)
			}
			p = append(p, segment{field: s[i+2 : i+2+end]})
			i += 2 + end + 2
		default:
			return nil, fmt.Errorf("%q: unexpected %q at offset %d: a Restricted JSONPath has only .field, ['field'] and [*] (filters, slices, indexes and recursive descent are not allowed)", s, s[i], i)
		}
	}
	return p, nil
}

func fieldChar(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// fields returns the field names of a fixed path.
func (p jsonPath) fields() []string {
	out := make([]string, len(p))
	for i, s := range p {
		out[i] = s.field
	}
	return out
}

// objects returns the maps that p selects in obj, in document order: a
// missing field selects nothing; a value of the wrong type is an error.
func (p jsonPath) objects(obj map[string]any) ([]map[string]any, error) {
	cur := []any{obj}
	for _, s := range p {
		var next []any
		for _, v := range cur {
			if s.all {
				arr, ok := v.([]any)
				if !ok {
					return nil, fmt.Errorf("%s: [*] applied to a %T, not an array", p, v)
				}
				next = append(next, arr...)
				continue
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: field %q looked up in a %T, not an object", p, s.field, v)
			}
			if c, ok := m[s.field]; ok && c != nil {
				next = append(next, c)
			}
		}
		cur = next
	}
	out := make([]map[string]any, 0, len(cur))
	for _, v := range cur {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s selects a %T, not an object", p, v)
		}
		out = append(out, m)
	}
	return out, nil
}
