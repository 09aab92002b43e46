package release

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"gopkg.in/yaml.v3"
)

const version = "v0.0.0-releasetest"

// repo is the root of the ddi repository.
var repo = func() string {
	d, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return d
}()

func cacheDir() string {
	if d := os.Getenv("DDI_CACHE"); d != "" {
		return d
	}
	return filepath.Join(repo, ".cache")
}

func kubectl(t *testing.T) string {
	t.Helper()
	if p := filepath.Join(cacheDir(), "kube", "v1.37.2", "kubectl"); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is neither in .cache/kube/v1.37.2 nor on PATH: run hack/kube-bins.sh")
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startRegistry starts a real registry with hack/registry.sh and returns
// its address; it is stopped when the test ends. The test is skipped only
// when the registry cannot be built.
func startRegistry(t *testing.T) string {
	t.Helper()
	start := time.Now()
	if out, err := exec.Command(filepath.Join(repo, "hack/registry.sh"), "build").CombinedOutput(); err != nil {
		t.Skipf("skipping: the CNCF distribution registry cannot be built from the module proxy (hack/registry.sh build): %v\n%s", err, out)
	}
	t.Logf("registry binary ready after %s", time.Since(start).Round(time.Second))
	dir := t.TempDir()
	out, err := exec.Command(filepath.Join(repo, "hack/registry.sh"), "start", dir).Output()
	if err != nil {
		t.Fatalf("hack/registry.sh start: %v\n%s", err, stderrOf(err))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(filepath.Join(repo, "hack/registry.sh"), "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("hack/registry.sh stop: %v\n%s", err, out)
		}
	})
	addr := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`^127\.0\.0\.1:[0-9]+$`).MatchString(addr) {
		t.Fatalf("hack/registry.sh start printed %q, want 127.0.0.1:PORT", addr)
	}
	return addr
}

func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}

// release runs hack/release.sh with args; it returns stdout, stderr and
// the error.
func release(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repo, "hack/release.sh"), args...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// refs are the digest references one release run printed.
type refs struct{ ddi, sidecar string }

func releaseTo(t *testing.T, registry, output string) refs {
	t.Helper()
	start := time.Now()
	stdout, stderr, err := release(t, "--registry", registry, "--version", version, "--output", output)
	if err != nil {
		t.Fatalf("hack/release.sh --registry %s: %v\n%s", registry, err, stderr)
	}
	t.Logf("hack/release.sh --registry %s took %s", registry, time.Since(start).Round(time.Second))
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 2 {
		t.Fatalf("hack/release.sh printed %q, want the two pinned references last", stdout)
	}
	r := refs{ddi: lines[len(lines)-2], sidecar: lines[len(lines)-1]}
	for _, ref := range []string{r.ddi, r.sidecar} {
		if _, err := name.NewDigest(ref); err != nil {
			t.Fatalf("hack/release.sh printed %q: not a digest reference: %v", ref, err)
		}
	}
	return r
}

func digestOf(ref string) string { _, d, _ := strings.Cut(ref, "@"); return d }

func TestRelease(t *testing.T) {
	kc := kubectl(t)
	addr := startRegistry(t)
	out := t.TempDir()

	// Two runs into two repositories of the same registry: the second
	// uploads nothing that differs only if the builds are reproducible.
	first := releaseTo(t, addr+"/first", filepath.Join(out, "first.yaml"))
	second := releaseTo(t, addr+"/second", filepath.Join(out, "second.yaml"))
	if !strings.HasPrefix(first.ddi, addr+"/first/ddi@sha256:") || !strings.HasPrefix(first.sidecar, addr+"/first/ddi-sidecar@sha256:") {
		t.Errorf("references = %s, %s; want %s/first/ddi@sha256:... and %s/first/ddi-sidecar@sha256:...", first.ddi, first.sidecar, addr, addr)
	}
	if digestOf(first.ddi) != digestOf(second.ddi) || digestOf(first.sidecar) != digestOf(second.sidecar) {
		t.Errorf("two runs on the same tree gave different digests (not reproducible):\nddi:         %s, %s\nddi-sidecar: %s, %s",
			digestOf(first.ddi), digestOf(second.ddi), digestOf(first.sidecar), digestOf(second.sidecar))
	}
	if digestOf(first.ddi) == digestOf(first.sidecar) {
		t.Errorf("ddi and ddi-sidecar have the same digest %s: the sidecar must be the nokube build", digestOf(first.ddi))
	}

	t.Run("images", func(t *testing.T) {
		checkImage(t, first.ddi, []string{"controller", "--help"}, true)
		checkImage(t, first.sidecar, []string{"controller", "--help"}, false)
	})
	t.Run("manifest", func(t *testing.T) {
		checkManifest(t, kc, filepath.Join(out, "first.yaml"), first)
	})
}

// checkImage checks the index at ref and its images; on this machine's
// platform (linux/amd64) it runs the binary with version and with probe,
// which succeeds only in the controller build when controller is true.
func checkImage(t *testing.T, ref string, probe []string, controller bool) {
	t.Helper()
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(d)
	if err != nil {
		t.Fatalf("remote.Index(%s): %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("%s: media type %s, want %s", ref, mt, types.OCIImageIndex)
	}
	var plats []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Errorf("%s: manifest %s has no platform", ref, m.Digest)
			continue
		}
		plat := m.Platform.OS + "/" + m.Platform.Architecture
		plats = append(plats, plat)
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatalf("%s: image %s: %v", ref, plat, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != plat {
			t.Errorf("%s: config of %s says %s/%s", ref, plat, cf.OS, cf.Architecture)
		}
		if cf.Config.User != "65532" {
			t.Errorf("%s %s: config User = %q, want 65532", ref, plat, cf.Config.User)
		}
		if want := []string{"/ko-app/ddi"}; !slices.Equal(cf.Config.Entrypoint, want) {
			t.Errorf("%s %s: Entrypoint = %q, want %q", ref, plat, cf.Config.Entrypoint, want)
		}
		if !slices.ContainsFunc(cf.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") && strings.Contains(e, ":/ko-app") }) {
			t.Errorf("%s %s: PATH in %q lacks /ko-app (the injected sidecar's command is plain ddi)", ref, plat, cf.Config.Env)
		}
		bin := layerFiles(t, ref+" "+plat, img)
		if bin == nil {
			t.Errorf("%s %s: no /ko-app/ddi in the image", ref, plat)
			continue
		}
		if plat == "linux/amd64" {
			runBinary(t, ref, bin, probe, controller)
		}
	}
	slices.Sort(plats)
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(plats, want) {
		t.Errorf("%s: index platforms = %v, want %v", ref, plats, want)
	}
}

// layerFiles checks every file of img's layers (no setuid or setgid, no
// file owned by another user than root, except nonroot's home) and returns
// the content of /ko-app/ddi.
func layerFiles(t *testing.T, what string, img v1.Image) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var bin []byte
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: read layer: %v", what, err)
			}
			if hdr.Mode&0o6000 != 0 {
				t.Errorf("%s: %s has mode %o: setuid or setgid", what, hdr.Name, hdr.Mode)
			}
			if (hdr.Uid != 0 || hdr.Gid != 0) && hdr.Name != "home/nonroot/" {
				t.Errorf("%s: %s is owned by %d:%d, want root", what, hdr.Name, hdr.Uid, hdr.Gid)
			}
			if !hdr.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("%s: %s has time %s, want the fixed epoch", what, hdr.Name, hdr.ModTime)
			}
			if hdr.Name == "ko-app/ddi" {
				if hdr.Mode&0o111 == 0 {
					t.Errorf("%s: /ko-app/ddi has mode %o, not executable", what, hdr.Mode)
				}
				if bin, err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
		}
		rc.Close()
	}
	return bin
}

// runBinary runs the image's ddi: version must print the release version,
// and probe must succeed exactly when controller is true.
func runBinary(t *testing.T, ref string, bin []byte, probe []string, controller bool) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ddi")
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p, "version", "-o", "json")
	// Nothing listens on port 1: version reports the control plane
	// unreachable at once and exits 0.
	cmd.Env = append(os.Environ(), "DDI_CONTROL_PLANE=http://127.0.0.1:1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: ddi version: %v\n%s", ref, err, stderrOf(err))
	}
	var v struct {
		Client struct{ Version string } `json:"client"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s: ddi version -o json printed %q: %v", ref, out, err)
	}
	if v.Client.Version != version {
		t.Errorf("%s: ddi version = %q, want %q", ref, v.Client.Version, version)
	}
	err = exec.Command(p, probe...).Run()
	if controller && err != nil {
		t.Errorf("%s: ddi %s: %v; the controller image must have the controller", ref, strings.Join(probe, " "), err)
	}
	if !controller && err == nil {
		t.Errorf("%s: ddi %s succeeded; the sidecar image must be the nokube build", ref, strings.Join(probe, " "))
	}
}

// decodeAll decodes every non-empty YAML document of b.
func decodeAll(t *testing.T, what string, b []byte) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var objs []map[string]any
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("parse %s: %v", what, err)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
	return objs
}

var baseImage = regexp.MustCompile(`ghcr\.io/ddi-dev/(ddi|ddi-sidecar):[A-Za-z0-9_.-]+`)

// mapStrings returns v with f applied to every string in it.
func mapStrings(v any, f func(string) string) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			out[k] = mapStrings(e, f)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = mapStrings(e, f)
		}
		return out
	case string:
		return f(v)
	}
	return v
}

// images returns every container image and --sidecar-image value in v.
func images(v any, key string, acc *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			images(e, k, acc)
		}
	case []any:
		for _, e := range v {
			images(e, key, acc)
		}
	case string:
		if key == "image" {
			*acc = append(*acc, v)
		}
		if s, ok := strings.CutPrefix(v, "--sidecar-image="); ok {
			*acc = append(*acc, s)
		}
	}
}

func checkManifest(t *testing.T, kc, file string, r refs) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got := decodeAll(t, file, b)
	rendered, err := exec.Command(kc, "kustomize", filepath.Join(repo, "deploy")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/: %v\n%s", err, stderrOf(err))
	}
	// What deploy/ renders, with its two image references replaced by the
	// pinned ones, and nothing else changed.
	replaced := 0
	var want []map[string]any
	for _, o := range decodeAll(t, "kubectl kustomize deploy/", rendered) {
		want = append(want, mapStrings(o, func(s string) string {
			return baseImage.ReplaceAllStringFunc(s, func(m string) string {
				replaced++
				if strings.HasPrefix(m, "ghcr.io/ddi-dev/ddi-sidecar:") {
					return r.sidecar
				}
				return r.ddi
			})
		}).(map[string]any))
	}
	if replaced < 2 {
		t.Errorf("deploy/ names %d images of ghcr.io/ddi-dev, want at least ddi and ddi-sidecar", replaced)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("release.yaml is not what kubectl kustomize deploy/ renders with the images pinned (-want +got):\n%s", diff)
	}

	var refs []string
	for _, o := range got {
		images(o, "", &refs)
	}
	slices.Sort(refs)
	refs = slices.Compact(refs)
	if want := []string{r.ddi, r.sidecar}; !slices.Equal(refs, want) && !slices.Equal(refs, []string{r.sidecar, r.ddi}) {
		t.Errorf("release.yaml references images %v, want exactly %v", refs, want)
	}
	for _, ref := range refs {
		d, err := name.NewDigest(ref)
		if err != nil {
			t.Errorf("release.yaml: image %q is not pinned by digest: %v", ref, err)
			continue
		}
		if _, err := remote.Head(d); err != nil {
			t.Errorf("release.yaml: image %s does not resolve in the registry: %v", ref, err)
		}
	}
}

// TestReleaseRefusesBadInput: a missing flag or a registry that does not
// answer fails at once, with a message naming the flag and the fix, and
// leaves no release.yaml, partial or not.
func TestReleaseRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{name: "no --registry", args: []string{"--version", version},
			want: []string{"--registry is missing", "hack/registry.sh start"}},
		{name: "no --version", args: []string{"--registry", "127.0.0.1:5000"},
			want: []string{"--version is missing", "--version v0.2.0"}},
		{name: "a --version that is no tag", args: []string{"--registry", "127.0.0.1:5000", "--version", "v1/2"},
			want: []string{"--version v1/2 is not a valid image tag"}},
		{name: "a registry that does not answer", args: []string{"--registry", "127.0.0.1:1", "--version", version},
			want: []string{"--registry 127.0.0.1:1 does not answer", "connection refused", "hack/registry.sh start"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			output := filepath.Join(dir, "release.yaml")
			_, stderr, err := release(t, append(tc.args, "--output", output)...)
			if err == nil {
				t.Fatalf("hack/release.sh %s succeeded, want an error", strings.Join(tc.args, " "))
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("hack/release.sh %s said %q, want it to contain %q", strings.Join(tc.args, " "), stderr, w)
				}
			}
			if left, _ := os.ReadDir(dir); len(left) > 0 {
				t.Errorf("hack/release.sh %s left %v in the output folder, want nothing", strings.Join(tc.args, " "), left)
			}
		})
	}
}
