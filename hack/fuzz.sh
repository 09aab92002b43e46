#!/usr/bin/env bash
# Run every native Go fuzz target (func FuzzXxx in a _test.go file) of the
# main module and of the SDK module, one at a time, each for DDI_FUZZTIME
# (default 3s). The targets are found by grepping the modules' packages, so
# a new one runs without changing this script. See docs/fuzzing.md.
#
#   DDI_FUZZTIME=10m hack/fuzz.sh            every target for 10 minutes
#   DDI_FUZZ='^FuzzParse' hack/fuzz.sh       only targets matching a regexp
#   DDI_FUZZMINIMIZETIME=60s hack/fuzz.sh    minimize new inputs (slow)
#
# A failing input is written to the package's testdata/fuzz/FuzzXxx/; keep
# it there (go test runs it as a regular test) and fix the code.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export GOTOOLCHAIN=local GOFLAGS=${GOFLAGS:--buildvcs=false}
FUZZTIME=${DDI_FUZZTIME:-3s}
# Minimizing every input that finds new coverage costs most of a short
# run; a failing input is kept either way. (-timeout 0 below: go test's
# default 10m would end a longer DDI_FUZZTIME; the fuzzing coordinator
# stops at DDI_FUZZTIME and reports a hung input itself.)
MINIMIZE=${DDI_FUZZMINIMIZETIME:-0s}
ONLY=${DDI_FUZZ:-.}

log() { printf '[fuzz %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# targets MODULE prints "PACKAGE_DIR TARGET" for each fuzz target of the
# module in directory MODULE (nested modules excluded, as go list does).
targets() {
  local dir
  for dir in $(go -C "$1" list -f '{{.Dir}}' ./...); do
    { grep -ho '^func Fuzz[A-Za-z0-9_]*(' "$dir"/*_test.go 2>/dev/null || true; } |
      sed 's/^func \(.*\)($/\1/' | sort -u | sed "s|^|$dir |"
  done
}

summary=()
failed=()
for mod in . sdk; do
  moddir=$(cd "$mod" && pwd)
  while read -r dir name; do
    [[ $name =~ $ONLY ]] || continue
    rel=${dir#"$moddir"}
    pkg=.$rel
    log "$name in $mod$rel for $FUZZTIME"
    out=$(mktemp)
    corpus="$dir/testdata/fuzz/$name"
    before=$(ls "$corpus" 2>/dev/null || true)
    start=$SECONDS
    result=ok
    if ! go -C "$mod" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$MINIMIZE" -timeout 0 "$pkg" >"$out" 2>&1; then
      if [ "$(ls "$corpus" 2>/dev/null || true)" = "$before" ] && grep -q '^    context deadline exceeded$' "$out" &&
        ! grep -q 'Failing input written' "$out"; then
        # go.dev/issue/75804 (fixed in Go 1.27): the -fuzztime deadline
        # can surface as a failure with no failing input. Nothing found.
        result="ok (go#75804)"
      else
        result=FAIL
        failed+=("$name")
        cat "$out" >&2
      fi
    fi
    execs=$(grep -o 'execs: [0-9]*' "$out" | tail -1 | cut -d' ' -f2 || true)
    summary+=("$(printf '%-22s %-26s %6ss %12s  %s' "$name" "$mod$rel" $((SECONDS - start)) "${execs:-?}" "$result")")
    rm -f "$out"
  done < <(targets "$mod")
done

if [ ${#summary[@]} -eq 0 ]; then
  log "no fuzz target matches DDI_FUZZ=$ONLY"
  exit 1
fi
printf '%-22s %-26s %7s %12s  %s\n' TARGET PACKAGE TIME EXECS RESULT >&2
printf '%s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
  log "failed: ${failed[*]} (failing inputs are in the packages' testdata/fuzz; see docs/fuzzing.md)"
  exit 1
fi
log "all ${#summary[@]} fuzz targets passed"
