package registry

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Version is a semantic version (semver.org 2.0): MAJOR.MINOR.PATCH with an
// optional pre-release. Build metadata is kept for display but ignored when
// comparing. A leading "v" is accepted and dropped.
type Version struct {
	Major, Minor, Patch uint64
	Pre                 []string
	Build               string
}

// ParseVersion parses a full semantic version such as "1.4.2" or
// "v2.0.0-rc.1".
func ParseVersion(s string) (Version, error) {
	v, n, err := parsePartial(s)
	if err != nil {
		return Version{}, err
	}
	if n != 3 {
		return Version{}, fmt.Errorf("%q is not a full semantic version: write MAJOR.MINOR.PATCH, for example 1.4.0", s)
	}
	return v, nil
}

// identChars are the characters of a pre-release or build identifier.
const identChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-"

// parsePartial parses "1", "1.2", "1.2.3" (with optional pre-release and
// build on full versions) and returns how many numeric parts were given.
// "x", "X" and "*" parts count as absent.
func parsePartial(s string) (Version, int, error) {
	orig := s
	s = strings.TrimPrefix(s, "v")
	if s == "" {
		return Version{}, 0, fmt.Errorf("empty version")
	}
	var v Version
	if i := strings.IndexByte(s, '+'); i >= 0 {
		v.Build = s[i+1:]
		s = s[:i]
		if v.Build == "" {
			return Version{}, 0, fmt.Errorf("%q has an empty build part after '+'", orig)
		}
		for _, id := range strings.Split(v.Build, ".") {
			if id == "" || strings.Trim(id, identChars) != "" {
				return Version{}, 0, fmt.Errorf("%q has an invalid build identifier %q: use letters, digits and '-', separated by dots", orig, id)
			}
		}
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		pre := s[i+1:]
		s = s[:i]
		if pre == "" {
			return Version{}, 0, fmt.Errorf("%q has an empty pre-release after '-'", orig)
		}
		v.Pre = strings.Split(pre, ".")
		for _, p := range v.Pre {
			if p == "" || strings.Trim(p, identChars) != "" {
				return Version{}, 0, fmt.Errorf("%q has an invalid pre-release identifier %q", orig, p)
			}
			if len(p) > 1 && p[0] == '0' && strings.Trim(p, "0123456789") == "" {
				return Version{}, 0, fmt.Errorf("%q has a numeric pre-release identifier %q with a leading zero", orig, p)
			}
		}
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return Version{}, 0, fmt.Errorf("%q has more than three numeric parts", orig)
	}
	n := 0
	for i, p := range parts {
		if p == "x" || p == "X" || p == "*" {
			for _, rest := range parts[i+1:] {
				if rest != "x" && rest != "X" && rest != "*" {
					return Version{}, 0, fmt.Errorf("%q has a number after a wildcard", orig)
				}
			}
			break
		}
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return Version{}, 0, fmt.Errorf("%q has an invalid numeric part %q", orig, p)
		}
		x, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return Version{}, 0, fmt.Errorf("%q has a non-numeric part %q", orig, p)
		}
		switch i {
		case 0:
			v.Major = x
		case 1:
			v.Minor = x
		case 2:
			v.Patch = x
		}
		n++
	}
	if n < 3 && (v.Pre != nil || v.Build != "") {
		return Version{}, 0, fmt.Errorf("%q: a pre-release or build needs a full MAJOR.MINOR.PATCH", orig)
	}
	return v, n, nil
}

// String formats the version without a leading "v".
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

// Compare returns -1, 0 or +1 following semver precedence.
func (v Version) Compare(o Version) int {
	if c := cmpU(v.Major, o.Major); c != 0 {
		return c
	}
	if c := cmpU(v.Minor, o.Minor); c != 0 {
		return c
	}
	if c := cmpU(v.Patch, o.Patch); c != 0 {
		return c
	}
	switch {
	case len(v.Pre) == 0 && len(o.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(o.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(o.Pre); i++ {
		a, b := v.Pre[i], o.Pre[i]
		an, aerr := strconv.ParseUint(a, 10, 64)
		bn, berr := strconv.ParseUint(b, 10, 64)
		switch {
		case aerr == nil && berr == nil:
			if c := cmpU(an, bn); c != 0 {
				return c
			}
		case aerr == nil:
			return -1
		case berr == nil:
			return 1
		default:
			if c := strings.Compare(a, b); c != 0 {
				return c
			}
		}
	}
	return cmpInt(len(v.Pre), len(o.Pre))
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt(a, b int) int { return cmpU(uint64(a), uint64(b)) }

// Range is a set of versions: a conjunction of comparisons, any of several
// conjunctions separated by "||". The zero Range matches every release.
type Range struct {
	src  string
	sets [][]comparator
}

type comparator struct {
	op string // one of "=", ">", ">=", "<", "<="
	v  Version
}

// ParseRange parses a version range. Supported forms, combinable with spaces
// (AND) and "||" (OR):
//
//	1.2.3 =1.2.3   exact
//	^1.2.3 ^1.2 ^0.3   compatible: same major (or minor when major is 0)
//	~1.2.3 ~1.2    same minor
//	>=1.2 >1.2 <2 <=2.1.0   comparisons
//	1.x 1.2.x 1 *  wildcards
func ParseRange(s string) (Range, error) {
	r := Range{src: strings.TrimSpace(s)}
	if r.src == "" || r.src == "*" {
		return r, nil
	}
	for _, alt := range strings.Split(r.src, "||") {
		fields := strings.Fields(alt)
		if len(fields) == 0 {
			return Range{}, fmt.Errorf("range %q has an empty alternative around \"||\"", s)
		}
		var set []comparator
		for _, f := range fields {
			cs, err := parseTerm(f)
			if err != nil {
				return Range{}, fmt.Errorf("range %q: %w", s, err)
			}
			set = append(set, cs...)
		}
		r.sets = append(r.sets, set)
	}
	return r, nil
}

func parseTerm(t string) ([]comparator, error) {
	op := ""
	for _, p := range []string{">=", "<=", ">", "<", "=", "^", "~"} {
		if strings.HasPrefix(t, p) {
			op, t = p, t[len(p):]
			break
		}
	}
	if t == "" {
		return nil, fmt.Errorf("operator %q needs a version after it", op)
	}
	v, n, err := parsePartial(t)
	if err != nil {
		return nil, err
	}
	if n == 0 { // "*", "x", "x.x", "*.*.*": any version
		if op == "" || op == "=" || op == ">=" {
			return nil, nil
		}
		return nil, fmt.Errorf("%q makes no sense: use * alone for any version", op+t)
	}
	// A span's upper bound adds one to a part: the largest part has no
	// version above it, so it is refused rather than wrapped to 0.
	for _, x := range []uint64{v.Major, v.Minor, v.Patch} {
		if x == math.MaxUint64 {
			return nil, fmt.Errorf("version part %d in %q is too large: use a number below %d", x, op+t, uint64(math.MaxUint64))
		}
	}
	// upper returns the first version above the partial version's span.
	upper := func(level int) Version {
		switch level {
		case 1:
			return Version{Major: v.Major + 1}
		case 2:
			return Version{Major: v.Major, Minor: v.Minor + 1}
		default:
			return Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch + 1}
		}
	}
	lo := Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch, Pre: v.Pre}
	switch op {
	case "", "=":
		if n == 3 {
			return []comparator{{"=", v}}, nil
		}
		return []comparator{{">=", lo}, {"<", upper(n)}}, nil
	case "^":
		switch {
		case v.Major > 0 || n == 1:
			return []comparator{{">=", lo}, {"<", upper(1)}}, nil
		case v.Minor > 0 || n == 2:
			return []comparator{{">=", lo}, {"<", upper(2)}}, nil
		default:
			return []comparator{{">=", lo}, {"<", upper(3)}}, nil
		}
	case "~":
		if n == 1 {
			return []comparator{{">=", lo}, {"<", upper(1)}}, nil
		}
		return []comparator{{">=", lo}, {"<", upper(2)}}, nil
	case ">":
		if n < 3 {
			return []comparator{{">=", upper(n)}}, nil
		}
		return []comparator{{">", v}}, nil
	case "<=":
		if n < 3 {
			return []comparator{{"<", upper(n)}}, nil
		}
		return []comparator{{"<=", v}}, nil
	default: // ">=", "<"
		return []comparator{{op, lo}}, nil
	}
}

// Match reports whether v lies in the range. A pre-release version matches
// only a range that names a pre-release of the same MAJOR.MINOR.PATCH, as in
// npm and Cargo, so "^1.0" never picks "2.0.0-rc.1" or "1.5.0-beta".
func (r Range) Match(v Version) bool {
	if len(r.sets) == 0 {
		return len(v.Pre) == 0
	}
	for _, set := range r.sets {
		if matchSet(set, v) {
			return true
		}
	}
	return false
}

func matchSet(set []comparator, v Version) bool {
	preAllowed := len(v.Pre) == 0
	for _, c := range set {
		d := v.Compare(c.v)
		ok := false
		switch c.op {
		case "=":
			ok = d == 0
		case ">":
			ok = d > 0
		case ">=":
			ok = d >= 0
		case "<":
			ok = d < 0
		case "<=":
			ok = d <= 0
		}
		if !ok {
			return false
		}
		if len(c.v.Pre) > 0 && c.v.Major == v.Major && c.v.Minor == v.Minor && c.v.Patch == v.Patch {
			preAllowed = true
		}
	}
	return preAllowed
}

// String returns the range as written ("*" for the zero Range).
func (r Range) String() string {
	if r.src == "" {
		return "*"
	}
	return r.src
}
