#!/usr/bin/env bash
# Install what the tests need on a fresh Debian machine, then run every test
# of the main module and the SDK module. This is the README's test command
# and what .ci/run executes.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export DDI_CACHE=${DDI_CACHE:-$REPO/.cache}
export GOTOOLCHAIN=local GOFLAGS=${GOFLAGS:--buildvcs=false}

log() { printf '[test %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Debian packages: real servers for the SDK tests, wrk for benchmarks.
need_pkgs=()
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v nats-server >/dev/null || need_pkgs+=(nats-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
command -v node >/dev/null || need_pkgs+=(nodejs npm)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v chromium >/dev/null || need_pkgs+=(chromium)   # the dashboard's browser test (test/dashboard)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

log "building Kubernetes test binaries (skipped when cached)"
KUBEBUILDER_ASSETS=$(hack/kube-bins.sh | tail -1)
# kubectl lives there too (linked, or built when the machine has none).
export KUBEBUILDER_ASSETS PATH="$PATH:$KUBEBUILDER_ASSETS"

log "gofmt and go vet"
unformatted=$(git ls-files -z '*.go' | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi
go vet ./...
go vet -tags e2e ./test/e2e/   # the cluster test compiles even where it cannot run
(cd sdk && go vet ./...)
go -C examples/orders vet ./...
go -C examples vet ./...
go -C examples build ./...
go -C hack/release vet ./...

log "main module tests"
go test -count=1 -timeout 30m ./...
log "SDK module tests"
(cd sdk && go test -count=1 -timeout 20m ./...)
log "fuzz targets, ${DDI_FUZZTIME:-3s} each (docs/fuzzing.md)"; hack/fuzz.sh
log "examples (against the real ddi binary)"
mkdir -p "$DDI_CACHE/bin"
go build -o "$DDI_CACHE/bin/ddi" ./cmd/ddi
DDI_BIN="$DDI_CACHE/bin/ddi" go -C examples/orders test -count=1 -timeout 10m ./...
log "release: hack/release.sh against a real registry (docs/install.md)"
go -C hack/release test -count=1 -timeout 30m ./...
log "all tests passed"
