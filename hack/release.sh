#!/usr/bin/env bash
# Build a ddi release: push its two images to a registry, and write one
# manifest that installs ddi with `kubectl apply -f release.yaml`
# (docs/install.md).
#
# Usage: hack/release.sh --registry REGISTRY --version VERSION [flags]
#   --registry REGISTRY   where the images go, e.g. ghcr.io/acme or
#                         127.0.0.1:5001 (hack/registry.sh start DIR prints one);
#                         they are pushed as REGISTRY/ddi:VERSION and
#                         REGISTRY/ddi-sidecar:VERSION
#   --version VERSION     release version, e.g. v0.2.0: the image tag and
#                         what `ddi version` prints
#   --output FILE         the manifest to write [release.yaml]
#   --platforms LIST      comma-separated OS/ARCH [linux/amd64,linux/arm64]
#   --insecure            plain HTTP to REGISTRY (loopback, .local and
#                         private addresses always use it)
#
# The images are built without Docker or a base image (hack/release/imgpush,
# on go-containerregistry): static binaries (CGO_ENABLED=0, -trimpath) in
# the layout of ko, run as user 65532, one OCI image index per image.
#   REGISTRY/ddi          the controller: go build ./cmd/ddi
#   REGISTRY/ddi-sidecar  the injected sidecar: go build -tags nokube ./cmd/ddi
# The same tree and toolchain give the same digests. The manifest is what
# `kubectl kustomize deploy/` renders with both image references pinned by
# digest (REGISTRY/ddi@sha256:...). It is written to a temporary file and
# renamed, so a failed run leaves no partial manifest. The last two lines
# on stdout are the pinned references of ddi and ddi-sidecar.
#
# Environment:
#   DDI_CACHE     cache root [<repo>/.cache]
#   DDI_BUILD_P   go build -p [2]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
DDI_CACHE=${DDI_CACHE:-$REPO/.cache}
readonly BUILD_P=${DDI_BUILD_P:-2}
# deploy/ names these images; release.yaml pins them by digest.
readonly BASE_IMAGE=ghcr.io/ddi-dev/ddi
readonly BASE_SIDECAR_IMAGE=ghcr.io/ddi-dev/ddi-sidecar
readonly VERSION_VAR=ddi.dev/ddi/internal/controlplane.Version
# sudo's secure_path hides a Go installed in /usr/local/go, and kubectl may
# be the one hack/kube-bins.sh linked or built into the cache.
for d in /usr/local/go/bin "$DDI_CACHE/kube/v1.37.2"; do
	[[ -d $d && ":$PATH:" != *":$d:"* ]] && PATH=$PATH:$d
done
export PATH GOTOOLCHAIN=local GOWORK=off

log() { printf '[release %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; }

registry="" version="" output=release.yaml platforms=linux/amd64,linux/arm64 insecure=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--registry | --version | --output | --platforms)
		[[ $# -ge 2 && -n $2 && $2 != --* ]] || die "$1 needs a value (hack/release.sh --help)"
		case $1 in
		--registry) registry=$2 ;;
		--version) version=$2 ;;
		--output) output=$2 ;;
		--platforms) platforms=$2 ;;
		esac
		shift 2
		;;
	--registry=* | --version=* | --output=* | --platforms=*)
		v=${1#*=}
		case $1 in
		--registry=*) registry=$v ;;
		--version=*) version=$v ;;
		--output=*) output=$v ;;
		--platforms=*) platforms=$v ;;
		esac
		shift
		;;
	--insecure) insecure=(-insecure); shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage; die "unknown argument $1" ;;
	esac
done

[[ -n $registry ]] || die "--registry is missing: name the registry your nodes pull from, e.g. --registry ghcr.io/acme, or start one on this machine with hack/registry.sh start DIR and pass the address it prints"
[[ -n $version ]] || die "--version is missing: give the release version, e.g. --version v0.2.0 (it becomes the image tag)"
[[ $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] ||
	die "--version $version is not a valid image tag: use letters, digits, '.', '_' and '-' (e.g. v0.2.0)"
registry=${registry%/}
[[ $registry != *://* ]] || die "--registry $registry: give HOST[:PORT][/PATH] without a scheme (e.g. 127.0.0.1:5001), and --insecure for plain HTTP"
IFS=, read -r -a plats <<<"$platforms"
for p in "${plats[@]}"; do
	[[ $p =~ ^[a-z0-9]+/[a-z0-9]+$ ]] || die "--platforms: $p is not OS/ARCH (e.g. linux/amd64)"
done
command -v go >/dev/null || die "go not found in PATH (install Go 1.26, or add /usr/local/go/bin)"
command -v kubectl >/dev/null || die "kubectl not found: hack/kube-bins.sh links or builds one into $DDI_CACHE/kube/v1.37.2"
outdir=$(dirname "$output")
[[ -d $outdir && -w $outdir ]] || die "--output $output: folder $outdir does not exist or is not writable"

work=$(mktemp -d "${TMPDIR:-/tmp}/ddi-release.XXXXXX")
tmp_out=""
cleanup() {
	rm -rf "$work"
	[[ -z $tmp_out ]] || rm -f "$tmp_out"
}
trap cleanup EXIT

log "building imgpush (hack/release/imgpush)"
go -C "$REPO/hack/release" build -trimpath -o "$work/imgpush" ./imgpush
imgpush=$work/imgpush

"$imgpush" "${insecure[@]}" -ping "${registry%%/*}" 2>"$work/ping.err" ||
	die "--registry $registry does not answer ($(sed 's/^imgpush: //' "$work/ping.err")): start it (hack/registry.sh start DIR prints the address of a local one) or fix the address; plain HTTP needs --insecure unless it is loopback or private"

# Render first: a broken deploy/ should fail before minutes of building.
kubectl kustomize "$REPO/deploy" >"$work/rendered.yaml" ||
	die "kubectl kustomize deploy/ failed"
for img in "$BASE_IMAGE" "$BASE_SIDECAR_IMAGE"; do
	grep -q "$img:" "$work/rendered.yaml" || die "deploy/ no longer names $img:TAG; update BASE_IMAGE and BASE_SIDECAR_IMAGE in $0"
done

# build NAME TAGS: one static binary per platform into $work/NAME/OS_ARCH/ddi.
build() {
	local name=$1 tags=$2 p t
	for p in "${plats[@]}"; do
		log "go build ./cmd/ddi for $p${tags:+ (-tags $tags)}"
		t=$SECONDS
		CGO_ENABLED=0 GOOS=${p%/*} GOARCH=${p#*/} go -C "$REPO" build -p "$BUILD_P" -trimpath \
			-tags "$tags" -ldflags "-s -w -X $VERSION_VAR=$version" \
			-o "$work/$name/${p/\//_}/ddi" ./cmd/ddi
		log "built $name for $p in $((SECONDS - t)) s"
	done
}

# push NAME: push REGISTRY/NAME:VERSION; print REGISTRY/NAME@DIGEST.
push() {
	local name=$1 p args=()
	for p in "${plats[@]}"; do args+=(-platform "$p=$work/$name/${p/\//_}/ddi"); done
	"$imgpush" "${insecure[@]}" -t "$registry/$name:$version" "${args[@]}" \
		-label "org.opencontainers.image.title=$name" \
		-label "org.opencontainers.image.version=$version"
}

build ddi ""
build ddi-sidecar nokube
log "pushing $registry/ddi:$version and $registry/ddi-sidecar:$version"
ddi_ref=$(push ddi)
sidecar_ref=$(push ddi-sidecar)
[[ $ddi_ref == "$registry/ddi@sha256:"* && $sidecar_ref == "$registry/ddi-sidecar@sha256:"* ]] ||
	die "imgpush printed unexpected references: $ddi_ref $sidecar_ref"

# sed patterns: escape the dots of the base names.
re() { printf '%s' "$1" | sed 's/[.]/\\./g'; }
tmp_out=$(mktemp "$outdir/.release.yaml.XXXXXX")
{
	printf '# ddi %s: kubectl apply -f release.yaml (docs/install.md).\n' "$version"
	printf '# What "kubectl kustomize deploy/" renders, with the images pinned by digest:\n'
	printf '#   %s\n#   %s\n' "$ddi_ref" "$sidecar_ref"
	sed -E "s#$(re "$BASE_SIDECAR_IMAGE"):[A-Za-z0-9_.-]+#$sidecar_ref#g; s#$(re "$BASE_IMAGE"):[A-Za-z0-9_.-]+#$ddi_ref#g" "$work/rendered.yaml"
} >"$tmp_out"
if grep -n 'ghcr\.io/ddi-dev/' "$tmp_out" >&2; then
	die "release.yaml still names unpinned images (above)"
fi
grep -q "image: $ddi_ref" "$tmp_out" || die "release.yaml has no container with image $ddi_ref"
grep -q -- "--sidecar-image=$sidecar_ref" "$tmp_out" || die "release.yaml has no --sidecar-image=$sidecar_ref"
chmod 0644 "$tmp_out"
mv -f "$tmp_out" "$output"
tmp_out=""
log "wrote $output"
printf '%s\n%s\n' "$ddi_ref" "$sidecar_ref"
