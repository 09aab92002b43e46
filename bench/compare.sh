#!/usr/bin/env bash
# Compare Go benchmarks of two revisions in one run, interleaved, so that
# a noisy machine weighs on both alike; benchstat prints the ratios.
#
# Usage: bench/compare.sh BASE [PKG] [BENCH] [COUNT]
#   BASE   a git revision (the baseline), compared with the working tree
#   PKG    package of the benchmarks [./internal/sidecar/]
#   BENCH  -bench regexp [.]
#   COUNT  rounds; each round runs BASE then the working tree once [6]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
base=${1:?usage: bench/compare.sh BASE [PKG] [BENCH] [COUNT]}
pkg=${2:-./internal/sidecar/}
bench=${3:-.}
count=${4:-6}
export GOTOOLCHAIN=local

tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/base" "$base" >/dev/null
(cd "$tmp/base" && go test -c -o "$tmp/base.test" "$pkg")
go test -c -o "$tmp/head.test" "$pkg"

dir=${pkg#./}
for i in $(seq "$count"); do
	for which in base head; do
		(cd "$dir" && "$tmp/$which.test" -test.run '^$' -test.bench "$bench" -test.benchmem -test.count 1) \
			| grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >>"$tmp/$which.txt"
	done
	printf 'round %d of %d done\n' "$i" "$count" >&2
done
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "base=$tmp/base.txt" "head=$tmp/head.txt"
