package servicebinding

import (
	"errors"
	"fmt"
	"strings"
)

// jsonPath is a parsed Fixed JSONPath (the specification's subset): child
// operators only, .name or ['name']. parsePath also accepts the wildcard
// [*] where asked to; container paths use the full JSONPath syntax
// (compileJSONPath).
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
				return nil, fmt.Errorf("%q: [*] is not allowed in a Fixed JSONPath", s)
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
			return nil, fmt.Errorf("%q: unexpected %q at offset %d: a Fixed JSONPath has only .field and ['field'] (no wildcards, filters, indexes or recursive descent)", s, s[i], i)
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
