// Package kubetest runs a real Kubernetes control plane for integration
// tests, in the spirit of cert-manager's test/integration/framework:
// RunControlPlane starts kube-apiserver and etcd (controller-runtime's
// envtest, binaries from hack/kube-bins.sh), loads ddi's CRDs from
// deploy/crd, installs the webhook configuration from deploy/webhook, runs
// the real ddi controller (webhook, control plane stream, reconcilers)
// in-process, optionally starts kube-controller-manager as a process, and
// stops everything in order when the test ends.
//
// It is test support only: nothing outside _test.go files and bench/ may
// import it.
package kubetest
