// Package wellknown holds the names and numbers that the sidecar and the
// SDK must agree on and that used to be written down in each: the
// sidecar's default port and listen address, the canonical Service Binding
// name of each binding type (with its usual aliases), and the conventional
// port of each type and URL scheme.
//
// The sidecar (its listen address and binding files), the injector (the
// port it gives the sidecar), the registry (the type names it stores) and
// the SDK (DefaultAddr, CanonicalType, DefaultPort, Binding.Port) all read
// them from here. It lives in the SDK module because the SDK must never
// import the main module, while the main module requires the SDK.
//
// The package must stay a table: no I/O, no parsing of URLs, no
// dependencies outside the standard library (the SDK's base package, which
// imports it, promises the standard library only; see TestBaseDependencies).
package wellknown
