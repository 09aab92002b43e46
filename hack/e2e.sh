#!/usr/bin/env bash
# ddi on the local Kubernetes + Knative cluster of hack/cluster.sh.
#
# Usage: hack/e2e.sh [VERB]   (as root)
#   all        (default) the whole end-to-end run, bounded in time: down
#              (leftovers of an earlier run), up, the README's install and
#              examples commands, go test -tags e2e
#              ./test/e2e/..., the Service Binding conformance suite
#              (hack/servicebinding-conformance.sh), down; exit status is
#              the first failure's
#   install    build ddi's two images (controller; sidecar with -tags
#              nokube), push them to the cluster's registry, apply
#              deploy/overlays/local, wait for
#              the controller
#   examples [FILE...]
#              build and deploy the example functions (examples/knative),
#              then call frontend through its Knative route; with FILEs,
#              apply those manifests with this build's example images
#              (e.g. examples/knative/greeter-v2.yaml)
#   test       go test -tags e2e ./test/e2e/... against the running cluster
#              (the test builds and installs from this tree by itself)
#
# Environment:
#   DDI_E2E_TIMEOUT    go test -timeout of the test verb [35m]
#   DDI_E2E_REPORT     the test writes its measurements here as JSON
#   DDI_E2E_KEEP=1     the test leaves its namespaces behind
#   DDI_E2E_SB_CONFORMANCE=0
#                      all skips the Service Binding conformance suite
#   DDI_DEADLINE       all: a Unix time to be done by (.ci/run sets it from
#                      CI's limit). With too little time left after the
#                      cluster is up, all skips what does not fit and says
#                      so: the Go tests need DDI_E2E_NEED (1500) seconds,
#                      ten cold-start rounds 600 more (else 3 rounds), the
#                      conformance suite 480
#   DDI_BUILD_P        go build -p [2]
# and those of hack/cluster.sh (DDI_CACHE, DDI_CLUSTER_STATE, ...).
set -euo pipefail

# shellcheck source=hack/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
readonly BUILD_P=${DDI_BUILD_P:-2}
readonly OUT=$DDI_CACHE/e2e/dev
readonly INGRESS=http://127.0.0.1:${DDI_CLUSTER_INGRESS_PORT:-31080}

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

kc() { kubectl --kubeconfig "$(hack/cluster.sh kubeconfig)" "$@"; }

# build_image REPO DIR PKG BIN [GO BUILD FLAGS]: build a static binary and
# push it as ddi.local/REPO:<first 12 hex of its sha256>; print the
# reference. A content tag rolls out a new build and only a new build.
build_image() {
	local repo=$1 dir=$2 pkg=$3 bin=$4
	shift 4
	mkdir -p "$(dirname "$bin")"
	(cd "$dir" && CGO_ENABLED=0 go build -p "$BUILD_P" -trimpath -ldflags='-s -w' "$@" -o "$bin" "$pkg")
	local ref
	ref=ddi.local/$repo:$(sha256sum "$bin" | cut -c1-12)
	local port=()
	[[ $repo == greeter || $repo == frontend ]] && port=(-port 8080)
	hack/cluster.sh image "$ref" "$bin" "${port[@]}" >/dev/null
	# Earlier builds' tarballs would be pushed again by every up.
	find "$DDI_CACHE/cluster/images" -maxdepth 1 -name "ddi.local_${repo}_*.tar*" \
		! -name "$(printf '%s' "$ref" | tr '/:' '__').tar*" -delete
	printf '%s\n' "$ref"
}

cmd_install() {
	local ddi sidecar
	log "building ddi (controller) and ddi -tags nokube (sidecar)"
	ddi=$(build_image ddi "$REPO" ./cmd/ddi "$OUT/ddi/ddi")
	sidecar=$(build_image ddi-sidecar "$REPO" ./cmd/ddi "$OUT/ddi-sidecar/ddi" -tags nokube)
	log "applying deploy/overlays/local with $ddi and $sidecar"
	kc kustomize --load-restrictor=LoadRestrictionsNone deploy/overlays/local |
		sed "s#ddi.local/ddi:dev#$ddi#; s#ddi.local/ddi-sidecar:dev#$sidecar#" |
		kc apply -f - >/dev/null
	kc -n ddi-system rollout status deploy/ddi-controller --timeout=180s >&2
	for _ in $(seq 1 120); do
		[[ -n $(kc get mutatingwebhookconfiguration ddi-sidecar-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}') ]] && break
		sleep 0.5
	done
	log "ddi installed"
	kc -n ddi-system get deploy,pods >&2
}

# example_images: build the example functions; set GREETER and FRONTEND.
example_images() {
	log "building examples/greeter and examples/frontend"
	GREETER=$(build_image greeter "$REPO/examples" ./greeter "$OUT/greeter/greeter")
	FRONTEND=$(build_image frontend "$REPO/examples" ./frontend "$OUT/frontend/frontend")
}

# apply_example FILE: apply a manifest with this build's example images.
apply_example() {
	sed "s#ddi.local/greeter:dev#$GREETER#; s#ddi.local/frontend:dev#$FRONTEND#" "$1" | kc apply -f - >/dev/null
	log "applied $1"
}

cmd_examples() {
	example_images
	if [[ $# -gt 0 ]]; then
		local f
		for f in "$@"; do apply_example "$f"; done
		return
	fi
	apply_example examples/knative/namespace.yaml
	apply_example examples/knative/greeter.yaml
	apply_example examples/knative/frontend.yaml
	kc -n ddi-demo wait --for=condition=Ready --timeout=180s ksvc/greeter >/dev/null
	apply_example examples/knative/greeter-provider.yaml
	kc -n ddi-demo wait --for=condition=Ready --timeout=90s provider/greeter >/dev/null
	kc -n ddi-demo wait --for=condition=Ready --timeout=180s ksvc/frontend >/dev/null
	kc -n ddi-demo get ksvc,providers >&2
	local host=frontend.ddi-demo.example.com
	log "curl -H 'Host: $host' $INGRESS/"
	curl -fsS --max-time 30 -H "Host: $host" "$INGRESS/"
	log "curl -H 'Host: $host' $INGRESS/bindings"
	curl -fsS --max-time 30 -H "Host: $host" "$INGRESS/bindings"
}

cmd_test() {
	go test -tags e2e -count=1 -v -timeout "${DDI_E2E_TIMEOUT:-35m}" ./test/e2e/...
}

# time_left: seconds until DDI_DEADLINE (a day when unset).
time_left() { echo $((${DDI_DEADLINE:-$(($(date +%s) + 86400))} - $(date +%s))); }

cmd_all() {
	[[ $(id -u) -eq 0 ]] || die "run as root: the local cluster needs containerd, mounts, iptables and a bridge"
	local start=$SECONDS rc=0
	trap 'log "bringing the cluster down"; hack/cluster.sh down >/dev/null 2>&1 || log "warning: hack/cluster.sh down failed"' EXIT
	log "clearing leftovers of an earlier run"
	hack/cluster.sh down >/dev/null 2>&1 || true
	# Building the cluster cold takes about 20 minutes; it must end 5 minutes
	# before DDI_DEADLINE at the latest, leaving time to take it down.
	local up=$(($(time_left) - 300 < 1800 ? $(time_left) - 300 : 1800))
	if ((up < 60)); then
		log "SKIPPED the whole end-to-end run: $(time_left) s left before DDI_DEADLINE"
		return 0
	fi
	log "bringing the cluster up (at most $up s)"
	if ! timeout "$up" hack/cluster.sh up >/dev/null; then
		if (($(time_left) <= 300)); then
			log "SKIPPED the end-to-end tests: bringing the cluster up did not finish before DDI_DEADLINE (less than 5 minutes left)"
			return 0
		fi
		die "hack/cluster.sh up failed; see the logs in ${DDI_CLUSTER_STATE:-/var/lib/ddi-cluster}/logs"
	fi
	log "cluster up after $((SECONDS - start)) s"
	# The README's "On Kubernetes" commands, as it prints them (but sudo).
	log "the README's commands: hack/e2e.sh install, hack/e2e.sh examples"
	if ! { hack/e2e.sh install && hack/e2e.sh examples; } >&2; then
		log "the README's commands failed"
		rc=1
	fi
	local need=${DDI_E2E_NEED:-1500}
	if (($(time_left) < need)); then
		log "SKIPPED the Go end-to-end tests and the Service Binding conformance suite: $(time_left) s left before DDI_DEADLINE, they need about $need s"
		return "$rc"
	fi
	if [[ -z ${DDI_E2E_COLD_ROUNDS:-} ]] && (($(time_left) < need + 600)); then
		export DDI_E2E_COLD_ROUNDS=3
		log "only $(time_left) s left before DDI_DEADLINE: 3 cold-start rounds instead of 10"
	fi
	# The Go tests stop in time for the cluster to come down.
	DDI_E2E_TIMEOUT=${DDI_E2E_TIMEOUT:-$((($(time_left) - 120) / 60 < 35 ? ($(time_left) - 120) / 60 : 35))m}
	log "running the end-to-end tests (timeout $DDI_E2E_TIMEOUT)"
	# The cluster goes next: the test need not clean its namespaces up.
	DDI_E2E_KEEP=${DDI_E2E_KEEP:-1} cmd_test || rc=$?
	log "tests finished with status $rc after $((SECONDS - start)) s"
	if [[ ${DDI_E2E_SB_CONFORMANCE:-1} != 0 ]] && (($(time_left) < 480)); then
		log "SKIPPED the Service Binding conformance suite: $(time_left) s left before DDI_DEADLINE, it needs about 480 s"
	elif [[ ${DDI_E2E_SB_CONFORMANCE:-1} != 0 ]]; then
		log "running the Service Binding conformance suite (hack/servicebinding-conformance.sh)"
		local sbrc=0
		hack/servicebinding-conformance.sh || sbrc=$?
		log "Service Binding conformance suite finished with status $sbrc after $((SECONDS - start)) s"
		((rc != 0)) || rc=$sbrc
	fi
	return "$rc"
}

case ${1:-all} in
all) cmd_all ;;
install) cmd_install ;;
examples) shift; cmd_examples "$@" ;;
test) cmd_test ;;
-h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | cut -c3- ;;
*) sed -n '2,/^set -euo/p' "$0" | sed '$d' | cut -c3- >&2; exit 2 ;;
esac
