// Package release holds the test of hack/release.sh: it starts a real OCI
// registry on loopback (hack/registry.sh), runs the real script against it
// twice and checks the images and release.yaml it produced. The command
// imgpush, in imgpush/, is what the script builds images with.
//
// Nothing here is imported by ddi; the module stays apart from ddi.dev/ddi
// so that go-containerregistry never enters ddi's own dependencies.
package release
