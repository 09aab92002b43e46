// Command imgpack packs static binaries and files into a single-layer OCI
// image and writes it as an image tarball that `ctr images import` reads.
//
// Usage:
//
//	imgpack -o OUT.tar -t NAME:TAG [flags] SRC[:DEST[:MODE]]...
//
// Each SRC is a file or a folder on this machine; DEST is its absolute path
// in the image (default /SRC's base name for files, / for folders), MODE an
// octal permission (default: the source's). The image also gets /tmp
// (mode 1777) and an /etc/passwd and /etc/group that name root and nonroot
// (65532). The entrypoint defaults to the first file's DEST. File times are
// fixed, so packing the same inputs twice gives the same image digest.
//
//	imgpack -push HOST:PORT TAR...
//
// pushes the image of each tarball to the plain-HTTP registry at HOST:PORT,
// under its own repository path and tag without the original registry host
// (ddi.local/knative/queue:v1 becomes HOST:PORT/knative/queue:v1), and
// prints each pushed reference with its digest. The local cluster's
// containerd pulls ddi.local/... and ghcr.io/... images from there.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the modification time of every file in the layer.
var epoch = time.Unix(0, 0).UTC()

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "imgpack: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-push" || args[0] == "--push") {
		if len(args) < 3 {
			return errors.New("usage: imgpack -push HOST:PORT TAR...")
		}
		return push(args[1], args[2:], os.Stdout)
	}
	fl := flag.NewFlagSet("imgpack", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var (
		out        = fl.String("o", "", "output image tarball (required)")
		tag        = fl.String("t", "", "image reference NAME:TAG (required)")
		user       = fl.String("user", "", "user (numeric UID[:GID]) the image runs as; empty for root")
		entrypoint = fl.String("entrypoint", "", "entrypoint path (default: the first file's DEST)")
		workdir    = fl.String("workdir", "/", "working directory")
		envs       listFlag
		cmdArgs    listFlag
		labels     listFlag
		ports      listFlag
	)
	fl.Var(&envs, "env", "KEY=VALUE environment variable (repeatable)")
	fl.Var(&cmdArgs, "arg", "argument given to the entrypoint (repeatable)")
	fl.Var(&labels, "label", "KEY=VALUE image label (repeatable)")
	fl.Var(&ports, "port", "exposed port, e.g. 8080/tcp (repeatable)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: imgpack -o OUT.tar -t NAME:TAG [flags] SRC[:DEST[:MODE]]...")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *out == "" || *tag == "" || fl.NArg() == 0 {
		fl.Usage()
		return errors.New("-o, -t and at least one SRC are required")
	}
	ref, err := name.NewTag(*tag, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("parse -t %q: %w", *tag, err)
	}

	lb := newLayerBuilder()
	lb.dir("/tmp", 0o1777|fs.ModeSticky)
	lb.dir("/etc", 0o755)
	lb.file("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"))
	lb.file("/etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n"))
	lb.dir("/home/nonroot", 0o755)
	firstFile := ""
	for _, spec := range fl.Args() {
		dest, err := lb.add(spec)
		if err != nil {
			return err
		}
		if firstFile == "" && dest != "" {
			firstFile = dest
		}
	}
	if *entrypoint == "" {
		*entrypoint = firstFile
	}
	if *entrypoint == "" {
		return errors.New("no entrypoint: give -entrypoint or at least one file")
	}

	layerBytes, err := lb.bytes()
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return fmt.Errorf("make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = runtime.GOARCH
	cf.OS = "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{*entrypoint}
	cf.Config.Cmd = cmdArgs
	cf.Config.User = *user
	cf.Config.WorkingDir = *workdir
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin:/ko-app"}, envs...)
	if len(labels) > 0 {
		cf.Config.Labels = map[string]string{}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			cf.Config.Labels[k] = v
		}
	}
	if len(ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range ports {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("set config: %w", err)
	}

	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("create output folder: %w", err)
	}
	tmp := *out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	fmt.Printf("%s %s\n", ref.String(), digest)
	return nil
}

// layerBuilder collects the entries of one image layer; later entries for
// the same path replace earlier ones, and parents are created as needed.
type layerBuilder struct {
	entries map[string]entry
}

type entry struct {
	mode fs.FileMode
	data []byte
	dir  bool
	link string
}

func newLayerBuilder() *layerBuilder { return &layerBuilder{entries: map[string]entry{}} }

func (lb *layerBuilder) parents(p string) {
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		if _, ok := lb.entries[d]; !ok {
			lb.entries[d] = entry{mode: 0o755, dir: true}
		}
	}
}

func (lb *layerBuilder) dir(p string, mode fs.FileMode) {
	lb.parents(p)
	lb.entries[p] = entry{mode: mode, dir: true}
}

func (lb *layerBuilder) file(p string, mode fs.FileMode, data []byte) {
	lb.parents(p)
	lb.entries[p] = entry{mode: mode, data: data}
}

// add adds SRC[:DEST[:MODE]] and returns DEST when SRC is a file.
func (lb *layerBuilder) add(spec string) (string, error) {
	parts := strings.SplitN(spec, ":", 3)
	src := parts[0]
	info, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("source %q: %w", src, err)
	}
	dest := ""
	if len(parts) > 1 && parts[1] != "" {
		dest = path.Clean(parts[1])
		if !path.IsAbs(dest) {
			return "", fmt.Errorf("destination %q in %q is not absolute", parts[1], spec)
		}
	}
	var mode fs.FileMode
	if len(parts) > 2 {
		m, err := strconv.ParseUint(parts[2], 8, 32)
		if err != nil {
			return "", fmt.Errorf("mode %q in %q: %w", parts[2], spec, err)
		}
		mode = fs.FileMode(m)
	}
	if !info.IsDir() {
		if dest == "" {
			dest = "/" + filepath.Base(src)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", src, err)
		}
		if mode == 0 {
			mode = info.Mode().Perm()
		}
		lb.file(dest, mode, data)
		return dest, nil
	}
	if dest == "" {
		dest = "/"
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := path.Join(dest, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if target != "/" {
				lb.dir(target, fi.Mode().Perm())
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			lb.parents(target)
			lb.entries[target] = entry{mode: 0o777, link: link}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lb.file(target, fi.Mode().Perm(), data)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("add folder %s: %w", src, err)
	}
	return "", nil
}

func (lb *layerBuilder) bytes() ([]byte, error) {
	paths := make([]string, 0, len(lb.entries))
	for p := range lb.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := lb.entries[p]
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    int64(e.mode.Perm()),
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if e.mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case e.dir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case e.link != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.link
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write layer: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, fmt.Errorf("write layer: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	return buf.Bytes(), nil
}

// push writes the image of each tarball to the registry at addr, under its
// repository path without the original registry host.
func push(addr string, tars []string, stdout io.Writer) error {
	for _, tp := range tars {
		tags, err := tarballTags(tp)
		if err != nil {
			return err
		}
		for _, t := range tags {
			src, err := name.NewTag(t, name.WeakValidation)
			if err != nil {
				return fmt.Errorf("%s: tag %q: %w", tp, t, err)
			}
			img, err := tarball.ImageFromPath(tp, &src)
			if err != nil {
				return fmt.Errorf("read %s: %w", tp, err)
			}
			dst, err := name.NewTag(addr+"/"+src.RepositoryStr()+":"+src.TagStr(), name.Insecure)
			if err != nil {
				return fmt.Errorf("%s: %w", tp, err)
			}
			if err := remote.Write(dst, img); err != nil {
				return fmt.Errorf("push %s to %s: %w", tp, dst, err)
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s %s@%s\n", t, dst, d)
		}
	}
	return nil
}

// tarballTags lists the tags of a tarball's manifest.json.
func tarballTags(path string) ([]string, error) {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	if len(tags) == 0 {
		return nil, fmt.Errorf("%s names no tag", path)
	}
	return tags, nil
}
