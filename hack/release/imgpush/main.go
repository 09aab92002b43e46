// Command imgpush packs one static binary per platform into a multi-platform
// OCI image (an image index) and pushes it to a registry, without Docker and
// without a base image. hack/release.sh uses it for ddi's release images.
//
// Usage:
//
//	imgpush -t REGISTRY/NAME:TAG -platform linux/amd64=BIN [-platform linux/arm64=BIN]... [flags]
//	imgpush -ping REGISTRY
//
// Every image has one layer, laid out as ko lays out its images: the binary
// at /ko-app/NAME (NAME is the base name of the first BIN; the entrypoint;
// /ko-app is on PATH), an empty /var/run/ko (KO_DATA_PATH), /tmp (mode
// 1777), an /etc/passwd and /etc/group that name root and nonroot (65532),
// and /home/nonroot owned by nonroot. Every file is owned by root except
// /home/nonroot, no file is setuid or setgid, and the image runs as -user
// (65532 by default). Times are fixed and entries sorted, so the same
// binaries give the same digests. On success it prints REGISTRY/NAME@DIGEST,
// the digest of the index.
//
// -ping checks that REGISTRY answers the registry API (GET /v2/) and fails
// with the reason when it does not.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the time of every file, the config and its history.
var epoch = time.Unix(0, 0).UTC()

const (
	appDir   = "/ko-app"
	dataDir  = "/var/run/ko"
	nonroot  = 65532
	pathEnv  = "PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" + appDir
	dataEnv  = "KO_DATA_PATH=" + dataDir
	userName = "nonroot"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "imgpush: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("imgpush", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var (
		tag       = fl.String("t", "", "image reference REGISTRY/NAME:TAG to push (required)")
		user      = fl.String("user", fmt.Sprint(nonroot), "user (numeric UID[:GID]) the image runs as")
		insecure  = fl.Bool("insecure", false, "talk plain HTTP to the registry (loopback, .local and private addresses always do)")
		ping      = fl.String("ping", "", "only check that this registry answers, then exit")
		platforms listFlag
		labels    listFlag
	)
	fl.Var(&platforms, "platform", "OS/ARCH=BINARY: a static binary for one platform (repeatable, at least one)")
	fl.Var(&labels, "label", "KEY=VALUE image label (repeatable)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	var opts []name.Option
	if *insecure {
		opts = append(opts, name.Insecure)
	}
	if *ping != "" {
		return pingRegistry(ctx, *ping, opts)
	}
	if *tag == "" || len(platforms) == 0 || fl.NArg() > 0 {
		return errors.New("usage: imgpush -t REGISTRY/NAME:TAG -platform OS/ARCH=BINARY... [-user UID] [-label K=V]...")
	}
	ref, err := name.NewTag(*tag, opts...)
	if err != nil {
		return fmt.Errorf("parse -t %q: %w", *tag, err)
	}
	lbls := map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("-label %q is not KEY=VALUE", l)
		}
		lbls[k] = v
	}
	idx, err := buildIndex(platforms, *user, lbls)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("digest of %s: %w", ref, err)
	}
	fmt.Fprintf(stdout, "%s@%s\n", ref.Context(), d)
	return nil
}

// pingRegistry checks that reg answers GET /v2/ (200, or 401 when it wants
// credentials).
func pingRegistry(ctx context.Context, reg string, opts []name.Option) error {
	r, err := name.NewRegistry(reg, opts...)
	if err != nil {
		return fmt.Errorf("registry %q: %w", reg, err)
	}
	u := r.Scheme() + "://" + r.RegistryStr() + "/v2/"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err // names the URL and the reason

	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("registry %s: GET %s answered %s, want 200 or 401 (is it an OCI registry?)", reg, u, resp.Status)
	}
	return nil
}

// buildIndex makes one image per OS/ARCH=BINARY spec, in the order given,
// and an OCI image index of them.
func buildIndex(specs []string, user string, labels map[string]string) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]bool{}
	bin := ""
	for _, spec := range specs {
		plat, file, ok := strings.Cut(spec, "=")
		osName, arch, ok2 := strings.Cut(plat, "/")
		if !ok || !ok2 || osName == "" || arch == "" || file == "" {
			return nil, fmt.Errorf("-platform %q is not OS/ARCH=BINARY", spec)
		}
		if seen[plat] {
			return nil, fmt.Errorf("-platform %s given twice", plat)
		}
		seen[plat] = true
		if bin == "" {
			bin = filepath.Base(file)
		} else if filepath.Base(file) != bin {
			return nil, fmt.Errorf("-platform %q: every binary must have the same name (%s) so that the entrypoint is the same", spec, bin)
		}
		img, err := buildImage(file, osName, arch, user, labels)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", plat, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}},
		})
	}
	return idx, nil
}

// buildImage packs file as /ko-app/<base name> into a one-layer image.
func buildImage(file, osName, arch, user string, labels map[string]string) (v1.Image, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	bin := path.Join(appDir, filepath.Base(file))
	layerBytes, err := layerTar([]entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\n" + userName + ":x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" + userName + ":x:65532:65532:" + userName + ":/home/" + userName + ":/sbin/nologin\n")},
		{name: "home/", mode: 0o755},
		{name: "home/" + userName + "/", mode: 0o700, uid: nonroot},
		{name: strings.TrimPrefix(appDir, "/") + "/", mode: 0o755},
		{name: strings.TrimPrefix(bin, "/"), mode: 0o755, data: data},
		{name: "tmp/", mode: 0o1777},
		{name: "var/", mode: 0o755},
		{name: "var/run/", mode: 0o755},
		{name: strings.TrimPrefix(dataDir, "/") + "/", mode: 0o755},
	})
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "imgpush " + bin},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = osName, arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{bin}
	cf.Config.User = user
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{pathEnv, dataEnv}
	if len(labels) > 0 {
		cf.Config.Labels = labels
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// entry is one file or (name ending in /) folder of a layer.
type entry struct {
	name string
	mode int64
	uid  int
	data []byte
}

// layerTar writes entries, sorted by name, as an uncompressed tar with
// fixed times and owners.
func layerTar(entries []entry) ([]byte, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if e.mode&0o6000 != 0 {
			return nil, fmt.Errorf("%s: setuid and setgid are not allowed", e.name)
		}
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if strings.HasSuffix(e.name, "/") {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write layer: %w", err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	return buf.Bytes(), nil
}
