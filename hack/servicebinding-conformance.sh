#!/usr/bin/env bash
# The Service Binding for Kubernetes conformance suite
# (github.com/servicebinding/conformance, Python behave), unmodified, against
# ddi on the running local cluster of hack/cluster.sh.
#
# Usage: hack/servicebinding-conformance.sh   (as root, cluster up)
#
# What it sets up, since the suite's own setup.sh needs PyPI and ghcr.io:
#   - Debian's python3-behave, python3-requests, python3-yaml and jq; the
#     suite's runner behavex is not in Debian, so plain behave runs the same
#     feature files one scenario after another (behavex -j 1 does the same);
#   - polling2, not in Debian: test/servicebinding/python/polling2.py, the one
#     function the suite calls, on PYTHONPATH;
#   - the suite's generic test application: test/servicebinding/genericapp,
#     the same HTTP contract, packed under the image name the suite uses
#     (ghcr.io/servicebinding/conformance/generic-test-app:main) and imported
#     into the cluster's containerd;
#   - ddi from this tree (hack/e2e.sh install).
# The suite runs from its own folder, read-only (no bytecode is written).
#
# Environment (defaults in brackets):
#   DDI_SB_SUITE      the suite [<repo>/../shared/suites/servicebinding-conformance]
#   DDI_SB_NAMESPACE  the suite's TEST_NAMESPACE [servicebindings-cts]
#   DDI_SB_RESULTS    JUnit reports and the summary [<cache>/servicebinding-conformance]
#   DDI_SB_INSTALL=0  use the ddi already installed
# and those of hack/cluster.sh (DDI_CACHE, DDI_CLUSTER_STATE, ...).
# Exit status: 0 when every scenario passed.
set -euo pipefail

# shellcheck source=hack/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
readonly SUITE=${DDI_SB_SUITE:-$REPO/../shared/suites/servicebinding-conformance}
readonly NS=${DDI_SB_NAMESPACE:-servicebindings-cts}
readonly RESULTS=${DDI_SB_RESULTS:-$DDI_CACHE/servicebinding-conformance}
readonly APP_IMAGE=ghcr.io/servicebinding/conformance/generic-test-app:main

log() { printf '[sb-conformance %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root, like hack/cluster.sh"
[[ -f $SUITE/features/environment.py ]] ||
	die "no conformance suite at $SUITE; set DDI_SB_SUITE to a checkout of github.com/servicebinding/conformance"
KUBECONFIG=$(hack/cluster.sh kubeconfig)
export KUBECONFIG
kubectl get --raw /readyz >/dev/null 2>&1 || die "the local cluster is not up: run hack/cluster.sh up first"

# Debian's Python, whatever python3 comes first on PATH: the packages below
# are installed for it.
readonly PY=/usr/bin/python3
need=()
[[ -x $PY ]] || need+=(python3)
$PY -c 'import behave' 2>/dev/null || need+=(python3-behave)
$PY -c 'import requests' 2>/dev/null || need+=(python3-requests)
$PY -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
command -v jq >/dev/null || need+=(jq)
if ((${#need[@]})); then
	log "installing ${need[*]} from Debian"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

log "packing the stand-in generic test application as $APP_IMAGE"
hack/cluster.sh image "$APP_IMAGE" test/servicebinding/genericapp -port 8080 >/dev/null
if [[ ${DDI_SB_INSTALL:-1} != 0 ]]; then
	log "installing ddi from this tree"
	hack/e2e.sh install
fi

log "starting from an empty namespace $NS"
kubectl delete namespace "$NS" --ignore-not-found --wait=true --timeout=120s >/dev/null
rm -rf "$RESULTS"
mkdir -p "$RESULTS"

log "running the suite (features: $(cd "$SUITE/features" && echo ./*.feature))"
rc=0
(
	cd "$SUITE"
	PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$REPO/test/servicebinding/python \
		TEST_NAMESPACE=$NS $PY -m behave --no-color --format plain --no-capture \
		--junit --junit-directory "$RESULTS" features
) >"$RESULTS/behave.log" 2>&1 || rc=$?

# One line per feature from the JUnit reports: passed, failed, skipped.
summary=$($PY - "$RESULTS" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
for f in sorted(glob.glob(sys.argv[1] + "/TESTS-*.xml")):
    s = ET.parse(f).getroot()
    t, fl, er, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    print(f"{s.get('name')}: {t - fl - er - sk} passed, {fl + er} failed, {sk} skipped of {t}")
PY
)
printf '%s\n' "$summary" | tee "$RESULTS/summary.txt" >&2
tail -n 5 "$RESULTS/behave.log" >&2
log "full log: $RESULTS/behave.log; exit status $rc"
exit "$rc"
