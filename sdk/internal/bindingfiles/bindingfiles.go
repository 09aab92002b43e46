// Package bindingfiles writes a binding as files in the Service Binding
// layout ($SERVICE_BINDING_ROOT/<name>/<key>), the way the ddi sidecar
// projects them: type (the conventional name, such as postgresql),
// provider, host, port, uri, then every key of the binding's config and
// secret (database, username, password, sslmode...).
//
// Its tests prove that client libraries nobody here wrote (npm
// kube-service-bindings) read such files, and that the zero-ddi-code
// example in examples/binding-files works with them. It is for tests only;
// the sidecar has its own writer, which the end-to-end tests cover.
package bindingfiles

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	ddi "ddi.dev/ddi/sdk"
)

// Write writes b under root/b.Name, replacing what was there.
func Write(root string, b ddi.Binding) error {
	dir := filepath.Join(root, b.Name)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := Files(b)
	for _, k := range slices.Sorted(maps.Keys(files)) {
		mode := os.FileMode(0o644)
		if _, secret := b.Secret[k]; secret {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, k), []byte(files[k]), mode); err != nil {
			return fmt.Errorf("write binding %s: %w", b.Name, err)
		}
	}
	return nil
}

// Files returns the file names and contents of b's projection.
func Files(b ddi.Binding) map[string]string {
	out := map[string]string{}
	for k, v := range b.Config {
		out[k] = v
	}
	for k, v := range b.Secret {
		out[k] = v
	}
	out["type"] = ddi.CanonicalType(b.Type)
	out["provider"] = b.Provider
	if h := b.Host(); h != "" {
		out["host"] = h
		out["port"] = b.Port()
	}
	if u := b.Endpoint(); u != "" {
		out["uri"] = u
	}
	return out
}
