package registry_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

func TestProviderClone(t *testing.T) {
	orig := validProvider()
	orig.Owner = "pod:team-a/checkout-0/1234"
	orig.Revision = 7
	v := reflect.ValueOf(orig)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("the provider under test leaves Provider.%s zero: set it, so that Clone is tested on it", v.Type().Field(i).Name)
		}
	}

	c := orig.Clone()
	if diff := cmp.Diff(orig, c); diff != "" {
		t.Errorf("Clone() mismatch (-orig +clone):\n%s", diff)
	}
	if got := shared("Provider", reflect.ValueOf(orig), reflect.ValueOf(c)); len(got) > 0 {
		t.Errorf("Clone() shares %v with the original, want nothing shared", got)
	}

	var empty registry.Provider
	if diff := cmp.Diff(empty, empty.Clone()); diff != "" {
		t.Errorf("Provider{}.Clone() mismatch (-want +got):\n%s", diff)
	}
}

// shared returns the paths of the maps, slices and pointers that a and b,
// two values of one type, have in common. Unexported fields (time.Time's
// location) are skipped.
func shared(path string, a, b reflect.Value) []string {
	var out []string
	switch a.Kind() {
	case reflect.Map, reflect.Slice, reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return nil
		}
		if a.UnsafePointer() == b.UnsafePointer() {
			return []string{path}
		}
		switch a.Kind() {
		case reflect.Pointer:
			out = shared(path, a.Elem(), b.Elem())
		case reflect.Slice:
			for i := range min(a.Len(), b.Len()) {
				out = append(out, shared(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))...)
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				out = append(out, shared(path+"."+f.Name, a.Field(i), b.Field(i))...)
			}
		}
	}
	return out
}
