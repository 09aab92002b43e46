package ddi

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// InjectOption changes how Inject works.
type InjectOption func(*injectConfig)

type injectConfig struct {
	lazy    bool
	timeout time.Duration
}

// Lazy makes Inject fill every field it can build a value for without
// waiting for the sidecar or the providers, so that the function starts even
// when a dependency is unresolved, of the wrong type or unreachable. The
// values connect when first used: until the binding is usable, using them
// fails with an error that names the alias and the reason, and they work as
// soon as it is. Inject then reports only mistakes in the struct itself (a
// tag without an alias, an unexported field, a type no factory builds).
//
// One field can be lazy on its own with the tag option "lazy":
// `ddi:"cache,lazy"`.
func Lazy() InjectOption { return func(c *injectConfig) { c.lazy = true } }

// Timeout bounds how long Inject waits for the sidecar's first snapshot and
// for each provider to answer (default 10 s).
func Timeout(d time.Duration) InjectOption { return func(c *injectConfig) { c.timeout = d } }

// FieldError says why Inject could not fill one field.
type FieldError struct {
	Field string // the struct field's name
	Alias string // the dependency named by its tag
	Type  string // the field's Go type
	Err   error

	index int // the field's position, to report in struct order
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("field %s (alias %q, type %s): %v", e.Field, e.Alias, e.Type, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// InjectError lists every field Inject could not fill.
type InjectError struct {
	Fields []*FieldError
}

func (e *InjectError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ddi: inject: %d dependencies failed:", len(e.Fields))
	for _, f := range e.Fields {
		b.WriteString("\n\t")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap returns the field errors, for errors.Is and errors.As.
func (e *InjectError) Unwrap() []error {
	out := make([]error, len(e.Fields))
	for i, f := range e.Fields {
		out[i] = f
	}
	return out
}

var defaultClient Client

// Inject fills the fields of the struct ptr points to from their `ddi` tags
// with the zero Client (see Client.Inject).
func Inject(ctx context.Context, ptr any, opts ...InjectOption) error {
	return defaultClient.Inject(ctx, ptr, opts...)
}

// Inject fills the fields of the struct ptr points to from their `ddi`
// tags, each naming a dependency alias and optional options:
//
//	type Deps struct {
//		DB       *sql.DB       `ddi:"db"`
//		Cache    *redis.Client `ddi:"cache,lazy"`
//		Payments *http.Client  `ddi:"payments"`        // through the sidecar
//		Direct   *http.Client  `ddi:"payments,direct"` // to the endpoint
//		Events   string        `ddi:"events"`          // the endpoint URL
//	}
//
// The base package builds *http.Client, string, *url.URL, Binding and
// *Dependency fields; other types come from factories (RegisterFactory),
// such as those of ddi.dev/ddi/sdk/postgres, .../redis and .../nats.
//
// Inject starts the Client's watch (Start) with ctx, so the values follow
// their bindings for as long as ctx lives: pass a context that lives as long
// as the function, not a short timeout (use the Timeout option for that).
// The values keep working when the binding changes: new connections go to
// the new provider, old ones are drained (docs/sdk.md says how, per type).
//
// Every field that cannot be filled is reported in one *InjectError that
// names its alias, type and reason. Unless the injection is Lazy, Inject
// then closes what it built and leaves the struct unchanged.
func (c *Client) Inject(ctx context.Context, ptr any, opts ...InjectOption) error {
	cfg := injectConfig{timeout: 10 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("ddi: Inject needs a non-nil pointer to a struct, got %T", ptr)
	}
	if err := c.init(); err != nil {
		return err
	}
	sv := v.Elem()
	st := sv.Type()

	type plan struct {
		index int
		dep   *Dependency
		cands []*factory
	}
	var (
		plans []plan
		errs  InjectError
	)
	fail := func(d *Dependency, index int, err error) {
		errs.Fields = append(errs.Fields, &FieldError{Field: d.Field, Alias: d.Alias, Type: d.Type.String(), Err: err, index: index})
	}
	for i := range st.NumField() {
		f := st.Field(i)
		tag, ok := f.Tag.Lookup("ddi")
		if !ok || tag == "-" {
			continue
		}
		parts := strings.Split(tag, ",")
		dep := &Dependency{Alias: strings.TrimSpace(parts[0]), Field: f.Name, Type: f.Type, c: c, lazy: cfg.lazy}
		for _, o := range parts[1:] {
			o = strings.TrimSpace(o)
			if o == "lazy" {
				dep.lazy = true
			}
			dep.opts = append(dep.opts, o)
		}
		switch {
		case dep.Alias == "":
			fail(dep, i, fmt.Errorf("tag %q names no alias; write `ddi:\"ALIAS\"`", tag))
			continue
		case !f.IsExported():
			fail(dep, i, fmt.Errorf("field is unexported; Inject can only set exported fields"))
			continue
		}
		cands := factoriesFor(f.Type)
		if len(cands) == 0 {
			fail(dep, i, noFactory(f.Type))
			continue
		}
		plans = append(plans, plan{index: i, dep: dep, cands: cands})
	}
	if len(plans) == 0 {
		return errs.orNil()
	}

	// Load the cache (and keep it current for as long as ctx lives).
	run := c.startCache(ctx)
	wait := time.NewTimer(cfg.timeout)
	var startErr error
	select {
	case <-run.synced:
		startErr = run.err
	case <-wait.C:
		startErr = fmt.Errorf("sidecar at %s sent no snapshot within %s", c.base, cfg.timeout)
	case <-ctx.Done():
		startErr = ctx.Err()
	}
	wait.Stop()

	bctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	type built struct {
		index int
		value reflect.Value
	}
	var done []built
	for _, p := range plans {
		d := p.dep
		fieldErr := func(err error) { fail(d, p.index, err) }
		if !d.lazy && startErr != nil {
			fieldErr(fmt.Errorf("sidecar unreachable: %w", startErr))
			continue
		}
		b, bindErr := d.lookup(bctx)
		f := pick(p.cands, b)
		if f == nil {
			// Bound, but to a type no factory for this field takes.
			var accept []string
			for _, cand := range p.cands {
				accept = append(accept, cand.types...)
			}
			d.accept = accept
			if !d.lazy {
				fieldErr(d.check(b))
				continue
			}
			f = p.cands[0]
		}
		d.accept = f.types
		if !d.lazy && bindErr != nil {
			fieldErr(bindErr)
			continue
		}
		val, err := f.build(bctx, d)
		if err != nil {
			fieldErr(err)
			continue
		}
		rv := reflect.ValueOf(val)
		if !rv.IsValid() {
			rv = reflect.Zero(d.Type)
		}
		done = append(done, built{index: p.index, value: rv})
	}
	if len(errs.Fields) > 0 && !cfg.lazy {
		for _, b := range done {
			closeValue(b.value)
		}
		return errs.orNil()
	}
	for _, b := range done {
		sv.Field(b.index).Set(b.value)
	}
	return errs.orNil()
}

func (e *InjectError) orNil() error {
	if len(e.Fields) == 0 {
		return nil
	}
	slices.SortStableFunc(e.Fields, func(a, b *FieldError) int { return a.index - b.index })
	return e
}

// lookup returns the dependency's binding as the cache (or, before it is
// loaded, the sidecar) has it, without checking its type.
func (d *Dependency) lookup(ctx context.Context) (*Binding, error) {
	b, st := d.c.cached(d.Alias)
	if b != nil {
		return b, nil
	}
	if st != nil {
		return nil, st.missing(d.Alias)
	}
	fetched, err := d.c.fetch(ctx, d.Alias)
	if err != nil {
		return nil, err
	}
	return &fetched, nil
}

// pick chooses the factory for a binding: the one that takes its type, or
// the only one when the binding is not known yet. Nil means none fits.
func pick(cands []*factory, b *Binding) *factory {
	if b == nil {
		return cands[0]
	}
	for _, f := range cands {
		if f.fits(b.Type) {
			return f
		}
	}
	return nil
}

// closeValue releases a value built for an injection that failed.
func closeValue(v reflect.Value) {
	switch c := v.Interface().(type) {
	case io.Closer:
		_ = c.Close()
	case interface{ Close() }:
		c.Close()
	}
}

// knownFactories names the sub-package that builds well-known types.
var knownFactories = map[string]string{
	"*sql.DB":         "ddi.dev/ddi/sdk/postgres",
	"*pgxpool.Pool":   "ddi.dev/ddi/sdk/postgres",
	"*redis.Client":   "ddi.dev/ddi/sdk/redis",
	"*nats.Conn":      "ddi.dev/ddi/sdk/nats",
	"*ddi.Dependency": "",
}

func noFactory(t reflect.Type) error {
	if pkg := knownFactories[t.String()]; pkg != "" {
		return fmt.Errorf("no factory builds %s: import _ %q", t, pkg)
	}
	return fmt.Errorf("no factory builds %s: register one with ddi.RegisterFactory", t)
}
