#!/usr/bin/env bash
# Generate the code and manifests derived from api/ (api/v1alpha1, ddi's
# own resources; api/servicebinding/v1, the Service Binding resources):
#   api/**/zz_generated.deepcopy.go         (controller-gen object)
#   deploy/crd/*.yaml                       (controller-gen crd)
#
# controller-gen is built from the tools module hack/tools/gen (kept apart
# from the main go.mod) into $DDI_CACHE/tools/controller-gen-<version>, and
# the build is skipped when that binary is already there.
#
# Usage: hack/gen.sh [--check]
#   --check  generate into a temporary copy and fail if the committed files
#            differ (for CI).
#
# Environment:
#   DDI_CACHE    cache root (default: <repo>/.cache)
#   DDI_BUILD_P  go build -p value (default: 2)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly TOOLS="$REPO/hack/tools/gen"
DDI_CACHE=${DDI_CACHE:-$REPO/.cache}
BUILD_P=${DDI_BUILD_P:-2}
export GOFLAGS="-mod=readonly -buildvcs=false"

log() { printf '[gen %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

check=0
case "${1:-}" in
--check) check=1 ;;
"") ;;
*)
	sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac

version=$(cd "$TOOLS" && go list -m -f '{{.Version}}' sigs.k8s.io/controller-tools)
CONTROLLER_GEN="$DDI_CACHE/tools/controller-gen-$version"
if [[ ! -x "$CONTROLLER_GEN" ]]; then
	log "building controller-gen $version (module $TOOLS)"
	mkdir -p "$DDI_CACHE/tools"
	(cd "$TOOLS" && go build -p "$BUILD_P" -trimpath -ldflags "-s -w" \
		-o "$CONTROLLER_GEN.tmp" sigs.k8s.io/controller-tools/cmd/controller-gen)
	mv "$CONTROLLER_GEN.tmp" "$CONTROLLER_GEN"
fi

apis=(v1alpha1 servicebinding/v1 servicebinding/v1beta1)
out_crd="$REPO/deploy/crd"
if [[ $check -eq 1 ]]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/crd"
	for a in "${apis[@]}"; do
		mkdir -p "$tmp/api/$a"
		cp "$REPO/api/$a/zz_generated.deepcopy.go" "$tmp/api/$a/zz_generated.deepcopy.go"
	done
fi

cd "$REPO"
log "controller-gen object (api/...)"
"$CONTROLLER_GEN" object paths=./api/...
log "controller-gen crd (deploy/crd)"
crd_dir=$out_crd
[[ $check -eq 1 ]] && crd_dir="$tmp/crd"
"$CONTROLLER_GEN" crd paths=./api/... output:crd:artifacts:config="$crd_dir"

if [[ $check -eq 1 ]]; then
	status=0
	for a in "${apis[@]}"; do
		# Generated in place: show the change, then restore the committed
		# file.
		if ! diff -u "$tmp/api/$a/zz_generated.deepcopy.go" "$REPO/api/$a/zz_generated.deepcopy.go"; then
			cp "$tmp/api/$a/zz_generated.deepcopy.go" "$REPO/api/$a/zz_generated.deepcopy.go"
			status=1
		fi
	done
	if ! diff -ru "$out_crd" "$tmp/crd"; then
		status=1
	fi
	if [[ $status -ne 0 ]]; then
		log "generated files are stale: run hack/gen.sh and commit the result"
		exit 1
	fi
	log "generated files are current"
fi
