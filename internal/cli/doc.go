// Package cli implements the ddi command line: every subcommand, its flags,
// help text and output formats. Commands build on the control plane,
// sidecar and client packages; main only maps errors to exit codes.
package cli
