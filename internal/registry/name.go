package registry

import (
	"fmt"
	"regexp"
)

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateName reports whether s is a DNS-1123 label: at most 63 characters,
// lower-case alphanumerics or '-', starting and ending with an alphanumeric.
// field names the input in the error, for example "name" or "dependency".
func ValidateName(field, s string) error {
	switch {
	case s == "":
		return &FieldError{Field: field, Reason: "must not be empty; use a DNS-1123 label such as \"payments\""}
	case len(s) > 63:
		return &FieldError{Field: field, Value: s, Reason: fmt.Sprintf("is %d characters long; a DNS-1123 label has at most 63", len(s))}
	case !dns1123Label.MatchString(s):
		return &FieldError{Field: field, Value: s, Reason: "is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit"}
	}
	return nil
}

// FieldError is a validation error that names the offending field.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("%s %q %s", e.Field, e.Value, e.Reason)
}
