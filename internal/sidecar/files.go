package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/sdk/wellknown"
)

// Binding files follow the Service Binding layout, written the way the
// kubelet's AtomicWriter projects Secrets and ConfigMaps:
//
//	$SERVICE_BINDING_ROOT/<name>/.ddi-binding    marker: ddi owns this directory
//	$SERVICE_BINDING_ROOT/<name>/..ddi_<nanos>/  one complete version of the files
//	$SERVICE_BINDING_ROOT/<name>/..data       -> ..ddi_<nanos>
//	$SERVICE_BINDING_ROOT/<name>/<key>        -> ..data/<key>
//
// A new version is written to a fresh ..ddi_* directory, then ..data is
// swapped to it with one rename(2), so a reader sees either the old or the
// new set of files, never a mix. Service Binding clients (Spring Cloud
// Bindings, Quarkus, kube-service-bindings) already skip dot-files because
// mounted Secrets look the same. ddi only ever touches directories that
// carry its marker.
const (
	markerFile  = ".ddi-binding"
	dataLink    = "..data"
	versionPref = "..ddi_"
)

// fileRetry spaces retries after a failed projection.
var fileRetry = 2 * time.Second

// projector keeps $SERVICE_BINDING_ROOT in step with the cache.
type projector struct {
	root    string
	cache   *cache
	metrics *metrics
	log     *slog.Logger

	written map[string]int64 // binding name -> revision on disk
	swept   bool             // stale directories of an earlier run removed

	// done reports projections to the stream (which acks, or NACKs, a
	// snapshot only once its files are written) and to /readyz.
	mu          sync.Mutex
	doneVersion int64         // last snapshot version projected (or tried)
	doneErr     error         // and how that went
	doneCh      chan struct{} // closed and replaced after each projection
}

// projected records the outcome of projecting snapshot version.
func (p *projector) projected(version int64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneVersion, p.doneErr = version, err
	if p.doneCh != nil {
		close(p.doneCh)
	}
	p.doneCh = make(chan struct{})
}

// firstDone reports whether a snapshot has been projected (or tried), so
// that a function started after the sidecar is ready finds its files.
func (p *projector) firstDone() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.doneVersion > 0
}

// wait blocks until snapshot version (or a later one) has been projected
// and returns that projection's error, or ctx's.
func (p *projector) wait(ctx context.Context, version int64) error {
	for {
		p.mu.Lock()
		if p.doneCh == nil {
			p.doneCh = make(chan struct{})
		}
		v, err, ch := p.doneVersion, p.doneErr, p.doneCh
		p.mu.Unlock()
		if v >= version {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("binding files of snapshot %d not written yet: %w", version, ctx.Err())
		}
	}
}

// run projects every snapshot until ctx ends. A failed write is retried
// after fileRetry; a removal or write never blocks the API.
func (p *projector) run(ctx context.Context) {
	p.written = map[string]int64{}
	var retry <-chan time.Time
	for {
		snap := p.cache.load()
		retry = nil
		if snap.loaded {
			err := p.sync(snap)
			if err != nil {
				p.log.Warn("binding files not fully written; retrying", "err", err, "retry_in", fileRetry)
				retry = time.After(fileRetry)
			}
			p.projected(snap.version, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-snap.changed:
		case <-retry:
		}
	}
}

// sync writes changed bindings and removes the directories of bindings
// that went away.
func (p *projector) sync(snap *snapshot) error {
	var errs []error
	if err := os.MkdirAll(p.root, 0o755); err != nil {
		p.metrics.fileErrors.Inc()
		return fmt.Errorf("create binding root: %w", err)
	}
	if !p.swept {
		if err := p.sweep(snap); err != nil {
			errs = append(errs, err)
		} else {
			p.swept = true
		}
	}
	for _, name := range snap.names {
		e := snap.bindings[name]
		if rev, ok := p.written[name]; ok && rev == e.binding.Revision {
			continue
		}
		if err := writeBinding(p.root, &e.binding); err != nil {
			p.metrics.fileErrors.Inc()
			errs = append(errs, err)
			var refused *refusedError
			if errors.As(err, &refused) {
				p.written[name] = e.binding.Revision // retrying cannot help
				p.log.Warn("binding not projected", "binding", name, "err", err)
			}
			continue
		}
		p.written[name] = e.binding.Revision
		p.log.Debug("binding files written", "binding", name, "revision", e.binding.Revision)
	}
	for name := range p.written {
		if _, ok := snap.bindings[name]; ok {
			continue
		}
		if err := removeBinding(p.root, name); err != nil {
			p.metrics.fileErrors.Inc()
			var refused *refusedError
			if !errors.As(err, &refused) {
				errs = append(errs, err)
				continue
			}
		}
		delete(p.written, name)
		p.log.Debug("binding files removed", "binding", name)
	}
	return errors.Join(errs...)
}

// sweep removes ddi-owned directories that an earlier run left for
// bindings that no longer exist.
func (p *projector) sweep(snap *snapshot) error {
	entries, err := os.ReadDir(p.root)
	if err != nil {
		return fmt.Errorf("read binding root: %w", err)
	}
	var errs []error
	for _, de := range entries {
		name := de.Name()
		if _, bound := snap.bindings[name]; bound || !de.IsDir() || registry.ValidateName("binding", name) != nil {
			continue
		}
		if !owned(filepath.Join(p.root, name)) {
			continue
		}
		if err := removeBinding(p.root, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// refusedError is a binding that must not be projected (an unsafe name, a
// directory ddi does not own); retrying cannot help.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// owned reports whether dir is a real directory carrying ddi's marker.
func owned(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	m, err := os.Lstat(filepath.Join(dir, markerFile))
	return err == nil && m.Mode().IsRegular()
}

// bindingFile is one file of a projected binding.
type bindingFile struct {
	value  string
	secret bool // mode 0640, group of the binding root, instead of 0644
}

// bindingFiles computes the files of b: type, provider, host, port, uri and
// the username, password and database an endpoint URL carries, then one
// file per config key and per secret key (which win over derived ones;
// type and provider are never overridden).
func bindingFiles(b *registry.Binding) (map[string]bindingFile, error) {
	files := map[string]bindingFile{
		"type":     {value: b.Type},
		"provider": {value: b.Provider},
	}
	for _, ep := range b.Endpoints {
		if !ep.Ready {
			continue
		}
		u, err := url.Parse(ep.URL)
		if err != nil || u.Host == "" {
			break
		}
		files["uri"] = bindingFile{value: ep.URL, secret: hasPassword(u)}
		files["host"] = bindingFile{value: u.Hostname()}
		port := u.Port()
		if port == "" {
			port = wellknown.DefaultPort(u.Scheme)
		}
		if port != "" {
			files["port"] = bindingFile{value: port}
		}
		if u.User != nil {
			if name := u.User.Username(); name != "" {
				files["username"] = bindingFile{value: name}
			}
			if pw, ok := u.User.Password(); ok {
				files["password"] = bindingFile{value: pw, secret: true}
			}
		}
		if db := strings.Trim(u.Path, "/"); db != "" && !strings.Contains(db, "/") && hasDatabase(b.Type) {
			files["database"] = bindingFile{value: db}
		}
		break
	}
	for _, src := range []struct {
		field  string
		values map[string]string
		secret bool
	}{{"config", b.Config, false}, {"secret", b.Secret, true}} {
		for k, v := range src.values {
			if err := registry.ValidateConfigKey(src.field+" key", k); err != nil {
				return nil, &refusedError{fmt.Errorf("binding %s: %w", b.Name, err)}
			}
			if k == "type" || k == "provider" {
				continue
			}
			files[k] = bindingFile{value: v, secret: src.secret}
		}
	}
	return files, nil
}

func hasPassword(u *url.URL) bool {
	if u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}

func hasDatabase(typ string) bool {
	switch typ {
	case "postgresql", "mysql", "mongodb", "redis", "sqlserver", "mariadb":
		return true
	}
	return false
}

// writeBinding projects b under root atomically.
func writeBinding(root string, b *registry.Binding) error {
	if err := registry.ValidateName("binding name", b.Name); err != nil {
		return &refusedError{err}
	}
	files, err := bindingFiles(b)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, b.Name)
	switch fi, err := os.Lstat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("binding %s: %w", b.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, markerFile), []byte("written by ddi; the whole directory is replaced on change\n"), 0o644); err != nil {
			return fmt.Errorf("binding %s: %w", b.Name, err)
		}
	case err != nil:
		return fmt.Errorf("binding %s: %w", b.Name, err)
	case !fi.IsDir() || !owned(dir):
		return &refusedError{fmt.Errorf("binding %s: %s exists and was not created by ddi (no %s marker); leaving it alone", b.Name, dir, markerFile)}
	}

	// 1. A complete new version beside the old one.
	version := versionPref + strconv.FormatInt(time.Now().UnixNano(), 10)
	vdir := filepath.Join(dir, version)
	if err := os.Mkdir(vdir, 0o755); err != nil {
		return fmt.Errorf("binding %s: %w", b.Name, err)
	}
	// Secret files are readable by their owner (the sidecar) and by the
	// group of the binding root: on Kubernetes the pod's fsGroup, which
	// every container of the pod has and no one outside it; never by
	// others.
	gid := rootGroup(root)
	for k, f := range files {
		mode := os.FileMode(0o644)
		if f.secret {
			mode = 0o640
		}
		if err := writeFile(filepath.Join(vdir, k), f.value, mode, gid); err != nil {
			_ = os.RemoveAll(vdir)
			return fmt.Errorf("binding %s: %w", b.Name, err)
		}
	}
	// 2. Swap ..data to it in one rename.
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(version, tmp); err != nil {
		_ = os.RemoveAll(vdir)
		return fmt.Errorf("binding %s: %w", b.Name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		_ = os.RemoveAll(vdir)
		return fmt.Errorf("binding %s: %w", b.Name, err)
	}
	// 3. User-visible names point through ..data; stale ones and old
	// versions go.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("binding %s: %w", b.Name, err)
	}
	have := map[string]bool{}
	var errs []error
	for _, de := range entries {
		n := de.Name()
		switch {
		case n == markerFile || n == dataLink || n == version:
		case strings.HasPrefix(n, versionPref):
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				errs = append(errs, err)
			}
		case strings.HasPrefix(n, "."):
		default:
			if _, ok := files[n]; ok && linksTo(filepath.Join(dir, n), filepath.Join(dataLink, n)) {
				have[n] = true
				continue
			}
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for k := range files {
		if have[k] {
			continue
		}
		if err := os.Symlink(filepath.Join(dataLink, k), filepath.Join(dir, k)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("binding %s: %w", b.Name, err)
	}
	return nil
}

// linksTo reports whether path is a symlink to target. A key's link that
// points anywhere else is replaced, so that every visible name reads
// through ..data.
func linksTo(path, target string) bool {
	t, err := os.Readlink(path)
	return err == nil && t == target
}

// writeFile creates path with exactly mode (whatever the umask), in group
// gid when gid >= 0. The group is set before the content is written, so a
// secret is never readable by a group it was not meant for.
func writeFile(path, value string, mode os.FileMode, gid int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if gid >= 0 {
		// Allowed without privilege for a group the process is in (the
		// fsGroup is a supplementary group of every container of the pod).
		// A root of a group the process is not in (a shared /tmp) keeps
		// the process's own group: still not readable by others.
		if err := f.Chown(-1, gid); err != nil && !errors.Is(err, fs.ErrPermission) {
			_ = f.Close()
			return fmt.Errorf("give %s to group %d of the binding root: %w", filepath.Base(path), gid, err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.WriteString(value); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// removeBinding deletes a binding's directory if ddi owns it.
func removeBinding(root, name string) error {
	if err := registry.ValidateName("binding name", name); err != nil {
		return &refusedError{err}
	}
	dir := filepath.Join(root, name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if !owned(dir) {
		return &refusedError{fmt.Errorf("binding %s: %s was not created by ddi; leaving it alone", name, dir)}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("binding %s: %w", name, err)
	}
	return nil
}
