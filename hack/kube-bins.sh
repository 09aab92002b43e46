#!/usr/bin/env bash
# Build Kubernetes control-plane/node binaries and etcd from the Go module
# proxy into a cache folder, skipping binaries that are already there.
#
# Usage: hack/kube-bins.sh [envtest|all|NAME...]
#   NAME: etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy
#   default: envtest = etcd kube-apiserver kube-controller-manager
#
# Progress goes to stderr; the last line on stdout is the folder, so:
#   KUBEBUILDER_ASSETS=$(hack/kube-bins.sh | tail -1)
#
# Environment:
#   DDI_CACHE      cache root (default: <repo>/.cache)
#   DDI_KUBE_BINS  output folder (default: $DDI_CACHE/kube/v1.37.2)
#   DDI_BUILD_P    go build -p value (default: 2)
#
# Tools modules (kept apart from the main go.mod):
#   hack/tools/kube       k8s.io/kubernetes v1.37.2, staging modules at v0.37.2
#   hack/tools/kube/etcd  go.etcd.io/etcd/server/v3 v3.6.16 (cannot share a
#                         build list with kubernetes 1.37.2, which wants etcd 3.7)
set -euo pipefail

readonly KUBE_VERSION=v1.37.2
readonly KUBE_MAJOR=1
readonly KUBE_MINOR=37
readonly ETCD_VERSION=v3.6.16

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly TOOLS_KUBE="$REPO/hack/tools/kube"
readonly TOOLS_ETCD="$REPO/hack/tools/kube/etcd"
DDI_CACHE=${DDI_CACHE:-$REPO/.cache}
OUT=${DDI_KUBE_BINS:-$DDI_CACHE/kube/$KUBE_VERSION}
BUILD_P=${DDI_BUILD_P:-2}
# sudo's secure_path hides a Go installed in /usr/local/go.
[[ -d /usr/local/go/bin && ":$PATH:" != *":/usr/local/go/bin:"* ]] && PATH=$PATH:/usr/local/go/bin
export PATH

readonly ENVTEST_SET=(etcd kube-apiserver kube-controller-manager)
readonly ALL_SET=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { printf '[kube-bins %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

# --- arguments -------------------------------------------------------------
want=()
if [[ $# -eq 0 ]]; then
	want=("${ENVTEST_SET[@]}")
fi
for arg in "$@"; do
	case "$arg" in
	-h | --help) usage; exit 0 ;;
	envtest) want+=("${ENVTEST_SET[@]}") ;;
	all) want+=("${ALL_SET[@]}") ;;
	etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy)
		want+=("$arg") ;;
	*) usage; die "unknown binary: $arg" ;;
	esac
done

# --- environment -----------------------------------------------------------
# Reproducible, self-contained go invocations: never switch toolchains, never
# pick up a go.work, never rewrite go.mod/go.sum (they must be complete).
export GOTOOLCHAIN=local
export GOWORK=off
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0

command -v go >/dev/null || die "go not found in PATH"

# Keep the cache out of git when it lives in the repo.
ensure_gitignore() {
	case "$DDI_CACHE/" in
	"$REPO"/.cache/) ;;
	*) return 0 ;;
	esac
	local gi="$REPO/.gitignore"
	if [[ ! -f "$gi" ]]; then
		printf '.cache/\n' >"$gi"
		log "created $gi"
	elif ! grep -qxE '/?\.cache/?' "$gi"; then
		# Add a newline first if the file does not end with one.
		[[ -s "$gi" && -n "$(tail -c1 "$gi")" ]] && printf '\n' >>"$gi"
		printf '.cache/\n' >>"$gi"
		log "added .cache/ to $gi"
	fi
}
ensure_gitignore

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# Serialize concurrent runs (e.g. parallel test packages) on the same folder.
if command -v flock >/dev/null; then
	exec 9>"$OUT/.lock"
	if ! flock -n 9; then
		log "waiting for another kube-bins.sh run on $OUT"
		flock 9
	fi
fi

have() { [[ -f "$OUT/$1" && -x "$OUT/$1" ]]; }

# --- decide what to build --------------------------------------------------
need_etcd=0
need_kube=()
declare -A seen=()
for b in "${want[@]}"; do
	[[ -n "${seen[$b]:-}" ]] && continue
	seen[$b]=1
	if have "$b"; then
		log "$b: present, skipping"
		continue
	fi
	if [[ "$b" == etcd ]]; then
		need_etcd=1
	else
		need_kube+=("$b")
	fi
done

tmp=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

elapsed() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# --- etcd ------------------------------------------------------------------
if [[ $need_etcd -eq 1 ]]; then
	log "etcd $ETCD_VERSION: building (module $TOOLS_ETCD)"
	t0=$(date +%s)
	(
		cd "$TOOLS_ETCD"
		go build -p "$BUILD_P" -trimpath -ldflags "-s -w" \
			-o "$tmp/etcd" go.etcd.io/etcd/server/v3
	) 1>&2
	mv -f "$tmp/etcd" "$OUT/etcd"
	log "etcd: built in $(elapsed "$t0")"
fi

# --- kubernetes ------------------------------------------------------------
if [[ ${#need_kube[@]} -gt 0 ]]; then
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION"
		ldflags+=" -X $pkg.gitMajor=$KUBE_MAJOR"
		ldflags+=" -X $pkg.gitMinor=$KUBE_MINOR"
		ldflags+=" -X $pkg.gitTreeState=clean"
	done
	pkgs=()
	for b in "${need_kube[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	# One go build for all of them: shared packages compile once.
	log "${need_kube[*]} $KUBE_VERSION: building with -p $BUILD_P (module $TOOLS_KUBE)"
	t0=$(date +%s)
	mkdir -p "$tmp/kube"
	(
		cd "$TOOLS_KUBE"
		go build -p "$BUILD_P" -trimpath -ldflags "$ldflags" \
			-o "$tmp/kube/" "${pkgs[@]}"
	) 1>&2
	for b in "${need_kube[@]}"; do
		[[ -x "$tmp/kube/$b" ]] || die "$b was not produced"
		mv -f "$tmp/kube/$b" "$OUT/$b"
	done
	log "${need_kube[*]}: built in $(elapsed "$t0")"
fi

# --- kubectl (envtest wants it beside kube-apiserver and etcd) -------------
if [[ ! -x "$OUT/kubectl" ]]; then
	kubectl_bin=""
	if [[ -x /usr/bin/kubectl ]]; then
		kubectl_bin=/usr/bin/kubectl
	elif command -v kubectl >/dev/null; then
		kubectl_bin=$(command -v kubectl)
	fi
	if [[ -n "$kubectl_bin" ]]; then
		ln -sfn "$kubectl_bin" "$OUT/kubectl"
		log "kubectl: linked $kubectl_bin"
	else
		# No kubectl on this machine: build it from the same module.
		ldflags="-s -w"
		for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
			ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$KUBE_MAJOR -X $pkg.gitMinor=$KUBE_MINOR -X $pkg.gitTreeState=clean"
		done
		log "kubectl: not on this machine, building $KUBE_VERSION (module $TOOLS_KUBE)"
		t0=$(date +%s)
		mkdir -p "$tmp/kube"
		(cd "$TOOLS_KUBE" && go build -p "$BUILD_P" -trimpath -ldflags "$ldflags" -o "$tmp/kube/kubectl" k8s.io/kubernetes/cmd/kubectl) 1>&2
		mv -f "$tmp/kube/kubectl" "$OUT/kubectl"
		log "kubectl: built in $(elapsed "$t0")"
	fi
fi

echo "$OUT"
