package ddi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// A FactoryFunc builds the value injected into a field for one dependency.
//
// When dep.Lazy() is false the factory should prove the value works (open a
// connection, ping) and return an error that says why not; when it is true
// it must not wait for the network: the value connects when first used.
// Either way the value should read dep.Binding for every new connection and
// react to dep.OnChange, so that it follows the binding without being
// rebuilt. The error needs not name the field or alias: Inject adds them.
type FactoryFunc[T any] func(ctx context.Context, dep *Dependency) (T, error)

// factory is one registered FactoryFunc, type-erased.
type factory struct {
	types []string // canonical binding types accepted; empty accepts all
	build func(ctx context.Context, dep *Dependency) (any, error)
}

func (f *factory) fits(bindingType string) bool {
	return len(f.types) == 0 || slices.Contains(f.types, CanonicalType(bindingType))
}

var registry = struct {
	sync.RWMutex
	byType map[reflect.Type][]*factory
}{byType: map[reflect.Type][]*factory{}}

// RegisterFactory makes Inject able to fill fields of type T from bindings
// of the given types (such as "postgresql"; none means any type). Several
// factories may serve one Go type for different binding types (a *sql.DB
// from postgresql or from mysql); a later registration for the same Go type
// and binding type replaces the earlier one. Sub-packages such as
// ddi.dev/ddi/sdk/postgres call it when imported.
func RegisterFactory[T any](bindingTypes []string, fn FactoryFunc[T]) {
	if fn == nil {
		panic("ddi: RegisterFactory with a nil function")
	}
	t := reflect.TypeFor[T]()
	f := &factory{build: func(ctx context.Context, dep *Dependency) (any, error) { return fn(ctx, dep) }}
	for _, bt := range bindingTypes {
		f.types = append(f.types, CanonicalType(bt))
	}
	registry.Lock()
	defer registry.Unlock()
	list := registry.byType[t]
	list = slices.DeleteFunc(slices.Clone(list), func(old *factory) bool {
		return slices.Equal(old.types, f.types)
	})
	registry.byType[t] = append(list, f)
}

func factoriesFor(t reflect.Type) []*factory {
	registry.RLock()
	defer registry.RUnlock()
	return registry.byType[t]
}

// Dependency is what a factory gets to build a value: the alias, the field,
// the tag's options, and live access to the binding.
type Dependency struct {
	// Alias is the dependency's name, from the field's tag.
	Alias string
	// Field is the struct field's name.
	Field string
	// Type is the field's Go type.
	Type reflect.Type

	opts   []string
	lazy   bool
	accept []string // binding types the chosen factory takes
	c      *Client
}

// Client returns the Client that injects the dependency.
func (d *Dependency) Client() *Client { return d.c }

// Lazy reports whether the value must be built without waiting for the
// network (see Lazy).
func (d *Dependency) Lazy() bool { return d.lazy }

// Option reports whether the field's tag carries an option, as "direct" in
// `ddi:"payments,direct"`.
func (d *Dependency) Option(name string) bool { return slices.Contains(d.opts, name) }

// ErrWrongType is wrapped by the errors of bindings whose type does not fit
// the field they are injected into.
var ErrWrongType = errors.New("binding type does not fit the field")

// Binding returns the dependency's current binding from the Client's cache,
// kept current by its watch; before the cache is loaded it asks the
// sidecar. Factories call it for every new connection. It fails when the
// dependency is unresolved or undeclared (a *Problem), or when the bound
// provider's type does not fit the field (ErrWrongType).
func (d *Dependency) Binding(ctx context.Context) (Binding, error) {
	b, st := d.c.cached(d.Alias)
	if b == nil {
		if st != nil {
			return Binding{}, st.missing(d.Alias)
		}
		fetched, err := d.c.fetch(ctx, d.Alias)
		if err != nil {
			return Binding{}, err
		}
		b = &fetched
	}
	if err := d.check(b); err != nil {
		return Binding{}, err
	}
	return *b, nil
}

func (d *Dependency) check(b *Binding) error {
	if len(d.accept) == 0 || slices.Contains(d.accept, CanonicalType(b.Type)) {
		return nil
	}
	return fmt.Errorf("dependency %q is bound to provider %q of type %q, but %s takes %v: %w",
		d.Alias, b.Provider, b.Type, d.Type, d.accept, ErrWrongType)
}

// OnChange calls fn with the new binding every time the dependency's
// binding changes (another provider, moved endpoints, rotated credentials),
// on the Client's watch goroutine, for as long as that watch runs; fn must
// not block. Changes to a binding whose type does not fit are not passed
// on. It returns a function that stops the calls.
func (d *Dependency) OnChange(fn func(Binding)) (stop func()) {
	return d.c.subscribe(func(name string, b *Binding) {
		if name != d.Alias || b == nil || d.check(b) != nil {
			return
		}
		fn(*b)
	})
}
