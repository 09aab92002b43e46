package sidecar

import (
	"encoding/json"
	"sort"
	"testing"

	"ddi.dev/ddi/internal/registry"
	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/dditest/contract"
)

// contractSidecar is the real sidecar, fed by a fake control plane, as the
// contract suite sees it.
type contractSidecar struct {
	ts      *testSidecar
	cp      *fakeCP
	version int64
	bound   map[string]registry.Binding
	unres   map[string]registry.Unresolved
}

func (c *contractSidecar) URL() string { return c.ts.url }

// Set pushes a snapshot with b and u merged into what is served and waits
// for the sidecar's ack.
func (c *contractSidecar) Set(t *testing.T, b []ddi.Binding, u []ddi.Unresolved) {
	t.Helper()
	c.merge(t, b, u)
	bindings, unresolved := c.snapshot()
	c.cp.push(t, c.version, bindings, unresolved)
}

// merge adds b and u to what is served, in the next version.
func (c *contractSidecar) merge(t *testing.T, b []ddi.Binding, u []ddi.Unresolved) {
	t.Helper()
	c.version++
	for _, sb := range b {
		var rb registry.Binding
		convert(t, sb, &rb)
		if rb.Namespace == "" {
			rb.Namespace = "team"
		}
		rb.Revision = c.version
		c.bound[rb.Name] = rb
		delete(c.unres, rb.Name)
	}
	for _, su := range u {
		var ru registry.Unresolved
		convert(t, su, &ru)
		c.unres[ru.Name] = ru
		delete(c.bound, ru.Name)
	}
}

// snapshot returns what is served, sorted by name.
func (c *contractSidecar) snapshot() ([]registry.Binding, []registry.Unresolved) {
	bindings := []registry.Binding{}
	for _, rb := range c.bound {
		bindings = append(bindings, rb)
	}
	sort.Slice(bindings, func(i, j int) bool { return bindings[i].Name < bindings[j].Name })
	unresolved := []registry.Unresolved{}
	for _, ru := range c.unres {
		unresolved = append(unresolved, ru)
	}
	sort.Slice(unresolved, func(i, j int) bool { return unresolved[i].Name < unresolved[j].Name })
	return bindings, unresolved
}

// convert copies the SDK's form of a wire type into the sidecar's.
func convert(t *testing.T, from, to any) {
	t.Helper()
	data, err := json.Marshal(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, to); err != nil {
		t.Fatal(err)
	}
}

// TestContract runs the SDK's contract suite (sdk/dditest/contract) against
// the real sidecar; the SDK module runs the same suite against its fake
// sidecar, dditest, so the two cannot drift apart.
func TestContract(t *testing.T) {
	contract.Run(t, func(t *testing.T, fx contract.Fixture) contract.Sidecar {
		cp := newFakeCP(t)
		cfg := testConfig(cp)
		cfg.Dependencies = nil
		for _, b := range fx.Bindings {
			cfg.Dependencies = append(cfg.Dependencies, mustDep(b.Name+"="+b.Selector))
		}
		for _, u := range fx.Unresolved {
			cfg.Dependencies = append(cfg.Dependencies, mustDep(u.Name+"="+u.Selector))
		}
		c := &contractSidecar{cp: cp, bound: map[string]registry.Binding{}, unres: map[string]registry.Unresolved{}}
		c.merge(t, fx.Bindings, fx.Unresolved)
		c.ts = startSidecar(t, cfg)
		cp.nextHello(t)
		bindings, unresolved := c.snapshot()
		cp.push(t, c.version, bindings, unresolved)
		return c
	})
}
