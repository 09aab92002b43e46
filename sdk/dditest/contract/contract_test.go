package contract_test

import (
	"testing"

	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/dditest"
	"ddi.dev/ddi/sdk/dditest/contract"
)

// fake adapts dditest.Sidecar to contract.Sidecar.
type fake struct{ s *dditest.Sidecar }

func (f fake) URL() string { return f.s.URL }

func (f fake) Set(_ *testing.T, bindings []ddi.Binding, unresolved []ddi.Unresolved) {
	for _, b := range bindings {
		f.s.Bind(b)
	}
	for _, u := range unresolved {
		f.s.Unbind(u.Name, u.Selector, u.Reason)
	}
}

// TestFakeSidecar holds dditest to the contract the real sidecar passes
// (internal/sidecar's TestContract in the main module).
func TestFakeSidecar(t *testing.T) {
	contract.Run(t, func(t *testing.T, fx contract.Fixture) contract.Sidecar {
		f := fake{dditest.NewSidecar()}
		t.Cleanup(f.s.Close)
		f.Set(t, fx.Bindings, fx.Unresolved)
		return f
	})
}
