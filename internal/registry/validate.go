package registry

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"ddi.dev/ddi/sdk/wellknown"
)

// Limits on what a provider may carry. They keep one bad registration from
// bloating every snapshot.
const (
	MaxEndpoints   = 64
	MaxMapEntries  = 64
	MaxValueLength = 4096
	MinLeaseTTL    = time.Second
	MaxLeaseTTL    = 24 * time.Hour
)

// CanonicalType returns the conventional Service Binding name of a type:
// "postgres" becomes "postgresql", "mongo" becomes "mongodb", "rabbitmq"
// becomes "amqp". Other types are returned lower-cased. The table is the
// one the SDK uses, in package wellknown.
func CanonicalType(t string) string {
	return wellknown.CanonicalType(t)
}

// ValidateType checks that a type is a DNS-1123 label.
func ValidateType(t string) error {
	return ValidateName("type", t)
}

var labelKey = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
var labelValue = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)

// ValidateLabel checks a label key and value with Kubernetes' rules.
func ValidateLabel(k, v string) error {
	return validateLabel("label key", "labels", k, v)
}

// validateLabel is ValidateLabel for the labels in field: a bad key is
// reported as keyField, a bad value as field.KEY.
func validateLabel(keyField, field, k, v string) error {
	if len(k) > 253 || !labelKey.MatchString(k) {
		return &FieldError{Field: keyField, Value: k, Reason: "is not a valid label key: use letters, digits, '-', '_' and '.', with an optional DNS prefix and '/'"}
	}
	if len(v) > 63 || !labelValue.MatchString(v) {
		return &FieldError{Field: field + "." + k, Value: v, Reason: "is not a valid label value: at most 63 letters, digits, '-', '_' or '.'"}
	}
	return nil
}

var configKey = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)

// ValidateConfigKey checks that a config or secret key can safely become a
// file name in a Service Binding directory: no path separators, no dots at
// the start, nothing that escapes the directory.
func ValidateConfigKey(field, k string) error {
	if len(k) > 253 || !configKey.MatchString(k) || strings.Contains(k, "..") {
		return &FieldError{Field: field, Value: k, Reason: "is not a valid key: use letters, digits, '-', '_' and '.', without '/' or '..' (it becomes a file name)"}
	}
	return nil
}

// NormalizeProvider fills defaults (namespace, canonical type) in place.
func NormalizeProvider(p *Provider) {
	if p.Namespace == "" {
		p.Namespace = DefaultNamespace
	}
	p.Type = CanonicalType(p.Type)
	// One leading "v" before the major version goes ("v1.4.0"); a second
	// one stays, so that ValidateProvider refuses "vv1.4.0" instead of
	// storing "v1.4.0".
	p.Version = strings.TrimSpace(p.Version)
	if len(p.Version) > 1 && p.Version[0] == 'v' && p.Version[1] >= '0' && p.Version[1] <= '9' {
		p.Version = p.Version[1:]
	}
}

// ValidateProvider checks every field of a provider and returns the first
// problem as a *FieldError naming the field. It does not modify p; call
// NormalizeProvider first.
func ValidateProvider(p *Provider) error {
	if err := ValidateName("namespace", p.Namespace); err != nil {
		return err
	}
	if err := ValidateName("name", p.Name); err != nil {
		return err
	}
	if p.Type == "" {
		return &FieldError{Field: "type", Reason: "is required: for example http, postgresql, redis or nats"}
	}
	if err := ValidateType(p.Type); err != nil {
		return err
	}
	if p.Version != "" {
		if _, err := ParseVersion(p.Version); err != nil {
			return &FieldError{Field: "version", Value: p.Version, Reason: "is not a semantic version: write MAJOR.MINOR.PATCH, for example 1.4.0"}
		}
	}
	for k, v := range p.Labels {
		if err := ValidateLabel(k, v); err != nil {
			return err
		}
	}
	if len(p.Labels) > MaxMapEntries {
		return &FieldError{Field: "labels", Reason: fmt.Sprintf("has %d entries; at most %d are allowed", len(p.Labels), MaxMapEntries)}
	}
	if len(p.Endpoints) > MaxEndpoints {
		return &FieldError{Field: "endpoints", Reason: fmt.Sprintf("has %d entries; at most %d are allowed", len(p.Endpoints), MaxEndpoints)}
	}
	for i, e := range p.Endpoints {
		if err := ValidateEndpointURL(fmt.Sprintf("endpoints[%d].url", i), e.URL); err != nil {
			return err
		}
	}
	for _, m := range []struct {
		field  string
		values map[string]string
		secret bool
	}{{"config", p.Config, false}, {"secret", p.Secret, true}} {
		if len(m.values) > MaxMapEntries {
			return &FieldError{Field: m.field, Reason: fmt.Sprintf("has %d entries; at most %d are allowed", len(m.values), MaxMapEntries)}
		}
		for k, v := range m.values {
			if err := ValidateConfigKey(m.field+" key", k); err != nil {
				return err
			}
			if len(v) > MaxValueLength {
				return &FieldError{Field: m.field + "." + k, Reason: fmt.Sprintf("is %d bytes long; at most %d are allowed", len(v), MaxValueLength)}
			}
		}
	}
	if p.SecretRef != nil {
		if err := validateSubdomain("secretRef.name", p.SecretRef.Name); err != nil {
			return err
		}
		// The control plane fills Secret from these keys, so they become
		// file names too.
		for i, k := range p.SecretRef.Keys {
			if err := ValidateConfigKey(fmt.Sprintf("secretRef.keys[%d]", i), k); err != nil {
				return err
			}
		}
	}
	for i, ns := range p.Scope.Namespaces {
		if ns == "*" {
			continue
		}
		if err := ValidateName(fmt.Sprintf("scope.namespaces[%d]", i), ns); err != nil {
			return err
		}
	}
	for i, w := range p.Scope.Workloads {
		if err := ValidateName(fmt.Sprintf("scope.workloads[%d]", i), w); err != nil {
			return err
		}
	}
	for k, v := range p.Scope.WorkloadLabels {
		if err := validateLabel("scope.workloadLabels key", "scope.workloadLabels", k, v); err != nil {
			return err
		}
	}
	if p.Lease != nil {
		if err := ValidateTTL(time.Duration(p.Lease.TTL)); err != nil {
			return err
		}
	}
	return nil
}

// ValidateTTL checks a lease TTL.
func ValidateTTL(ttl time.Duration) error {
	if ttl < MinLeaseTTL || ttl > MaxLeaseTTL {
		return &FieldError{Field: "ttl", Value: ttl.String(), Reason: fmt.Sprintf("is out of range: use a duration between %s and %s", MinLeaseTTL, MaxLeaseTTL)}
	}
	return nil
}

// ValidateEndpointURL checks that u is an absolute URL with a host.
func ValidateEndpointURL(field, u string) error {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme == "" || parsed.Host == "" {
		return &FieldError{Field: field, Value: redactURL(u), Reason: "is not an absolute URL: write it like http://127.0.0.1:8080 or postgres://db:5432/app"}
	}
	if _, hasPassword := parsed.User.Password(); hasPassword {
		return &FieldError{Field: field, Value: redactURL(u), Reason: "carries a password: endpoints are shown in listings, so put credentials in the secret (username, password) instead"}
	}
	return nil
}

// redactURL drops user information so that credentials in a bad URL never
// reach an error message.
func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "REDACTED" + u[i:]
		}
		return "REDACTED" + u[i:]
	}
	return u
}

// validateSubdomain checks a DNS-1123 subdomain (dot-separated labels, at
// most 253 characters), the shape of Kubernetes object names.
func validateSubdomain(field, s string) error {
	if s == "" || len(s) > 253 {
		return &FieldError{Field: field, Value: s, Reason: "must be a DNS-1123 subdomain of 1 to 253 characters"}
	}
	for _, label := range strings.Split(s, ".") {
		if !dns1123Label.MatchString(label) {
			return &FieldError{Field: field, Value: s, Reason: "is not a DNS-1123 subdomain: use lower-case letters, digits, '-' and '.'"}
		}
	}
	return nil
}

// ReservedLabelPrefix starts the label keys only declared providers may
// carry. A consumer that selects on such a label (http@^1,ddi.dev/pin=api)
// can be bound only to a declaration, never to a run-time registration.
const ReservedLabelPrefix = "ddi.dev/"

// ValidateRegistration checks what a run-time registration (a provider a
// running function registers through its sidecar) must obey beyond
// ValidateProvider: its scope stays inside its own namespace, and it
// carries no label under ReservedLabelPrefix. Offering a provider to other
// namespaces takes a declaration (a Provider object or `ddi provider add`),
// which the namespace's own access rules govern.
func ValidateRegistration(p *Provider) error {
	for _, ns := range p.Scope.Namespaces {
		if ns != p.Namespace {
			return &FieldError{Field: "scope.namespaces", Value: ns,
				Reason: "reaches beyond the registration's own namespace " + p.Namespace + ": a run-time registration serves only its namespace; declare a Provider to export one to other namespaces"}
		}
	}
	for k := range p.Labels {
		if strings.HasPrefix(k, ReservedLabelPrefix) {
			return &FieldError{Field: "labels", Value: k,
				Reason: "uses the prefix " + ReservedLabelPrefix + ", which only declared providers may carry: drop the label or pick another key"}
		}
	}
	return nil
}
