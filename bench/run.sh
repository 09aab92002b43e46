#!/usr/bin/env bash
# Sidecar benchmarks on loopback: resolve and invoke through the ddi sidecar
# against a direct call to the same provider, in the same run.
#
# wrk (Debian) is pinned to CPU 0; the provider, the sidecar and the control
# plane to CPU 1. Each case runs DURATION seconds, RUNS times; the median
# run (by requests/s) is reported. Then: sidecar idle RSS and start-to-ready.
#
# Usage: bench/run.sh            (writes bench/results/<date>.md and prints it)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
OUT=bench/results
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The sidecar as shipped in its image: no Kubernetes libraries.
go build -tags nokube -o "$work/ddi" ./cmd/ddi
go build -o "$work/ddi-full" ./cmd/ddi
go build -o "$work/startready" ./bench/startready
DDI="$work/ddi"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { for _ in $(seq 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "not ready: $1" >&2; return 1; }

CP_PORT=$(free_port); SC_PORT=$(free_port)
taskset -c 1 "$DDI" --log-level error dev --data "$work/data" --listen 127.0.0.1:$CP_PORT & pids+=($!)
wait_http http://127.0.0.1:$CP_PORT/readyz
taskset -c 1 "$DDI" demo greeter --version 1.0.0 > "$work/greeter.out" & pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/greeter.out" 2>/dev/null && break; sleep 0.05; done
PROVIDER=$(awk '{print $3}' "$work/greeter.out")
"$DDI" --control-plane http://127.0.0.1:$CP_PORT provider add greeter --type http --version 1.0.0 --url "http://$PROVIDER" >/dev/null
taskset -c 1 "$DDI" --control-plane http://127.0.0.1:$CP_PORT --log-level error sidecar --name bench --dep greeter=greeter --listen 127.0.0.1:$SC_PORT & SC_PID=$!; pids+=($SC_PID)
wait_http http://127.0.0.1:$SC_PORT/readyz

# run_case NAME URL CONC -> "rps p50_ms p99_ms" of the median run
run_case() {
  local name=$1 url=$2 c=$3 i
  : > "$work/$name-$c.runs"
  for i in $(seq "$RUNS"); do
    taskset -c 0 wrk -t1 -c"$c" -d"${DURATION}s" --latency "$url" > "$work/$name-$c-$i.txt"
    python3 - "$work/$name-$c-$i.txt" >> "$work/$name-$c.runs" <<'PY'
import re,sys
t=open(sys.argv[1]).read()
def ms(s):
    v,u=re.match(r'([\d.]+)(\w+)',s).groups(); v=float(v)
    return v/1000 if u=='us' else v*1000 if u=='s' else v
rps=float(re.search(r'Requests/sec:\s+([\d.]+)',t).group(1))
p50=ms(re.search(r'\s50%\s+(\S+)',t).group(1)); p99=ms(re.search(r'\s99%\s+(\S+)',t).group(1))
errs=re.search(r'Non-2xx or 3xx responses: (\d+)',t)
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {errs.group(1) if errs else 0}")
PY
  done
  sort -n "$work/$name-$c.runs" | sed -n "$(( (RUNS+1)/2 ))p"
}

{
echo "# Sidecar benchmarks, $(date -u +%Y-%m-%d)"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), $(go version | awk '{print $3}')."
echo "wrk pinned to CPU 0; provider, sidecar and control plane pinned to CPU 1; ${DURATION}s runs, median of ${RUNS} by requests/s. Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| case | conc | req/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---|---|---|---|---|"
for c in 1 16; do
  for case in direct resolve invoke; do
    case $case in
      direct) url="http://$PROVIDER/" ;;
      resolve) url="http://127.0.0.1:$SC_PORT/v1/bindings/greeter" ;;
      invoke) url="http://127.0.0.1:$SC_PORT/v1/invoke/greeter/" ;;
    esac
    read -r rps p50 p99 errs < <(run_case "$case" "$url" "$c")
    echo "| $case | $c | $rps | $p50 | $p99 | $errs |"
    echo "$case $c $rps $p50 $p99" >> "$work/summary"
  done
done
echo
python3 - "$work/summary" <<'PY'
import sys
r={}
for line in open(sys.argv[1]):
    n,c,rps,p50,p99=line.split(); r[(n,c)]=(float(rps),float(p50),float(p99))
d16=r[('direct','16')][0]
print(f"- resolve c=16: {100*r[('resolve','16')][0]/d16:.0f}% of the direct call's req/s (target >= 70%); resolve p99 c=1: {r[('resolve','1')][2]:.3f} ms (target <= 0.2 ms)")
print(f"- invoke c=16: {100*r[('invoke','16')][0]/d16:.0f}% of the direct call's req/s (target >= 40%); invoke added p50 c=1: {r[('invoke','1')][1]-r[('direct','1')][1]:.3f} ms (target <= 0.06 ms)")
PY
sleep 2
rss=$(awk '/VmRSS/{print $2}' /proc/$SC_PID/status)
echo "- sidecar RSS after the runs: $((rss/1024)) MiB ($rss KiB)"
# Idle RSS: a fresh sidecar that has loaded its snapshot and served nothing.
IDLE_PORT=$(free_port)
taskset -c 1 "$DDI" --control-plane http://127.0.0.1:$CP_PORT --log-level error sidecar --name idle --dep greeter=greeter --listen 127.0.0.1:$IDLE_PORT & IDLE_PID=$!; pids+=($IDLE_PID)
wait_http http://127.0.0.1:$IDLE_PORT/readyz; sleep 2
rss=$(awk '/VmRSS/{print $2}' /proc/$IDLE_PID/status)
echo "- sidecar idle RSS: $((rss/1024)) MiB ($rss KiB) (target <= 15 MiB); binary $(( $(stat -c %s "$DDI") / 1048576 )) MiB (-tags nokube)"
FULL_PORT=$(free_port)
taskset -c 1 "$work/ddi-full" --control-plane http://127.0.0.1:$CP_PORT --log-level error sidecar --name idle-full --dep greeter=greeter --listen 127.0.0.1:$FULL_PORT & FULL_PID=$!; pids+=($FULL_PID)
wait_http http://127.0.0.1:$FULL_PORT/readyz; sleep 2
rss=$(awk '/VmRSS/{print $2}' /proc/$FULL_PID/status)
echo "- for comparison, the same sidecar from the full build (with the Kubernetes controller linked in): $((rss/1024)) MiB idle RSS, binary $(( $(stat -c %s "$work/ddi-full") / 1048576 )) MiB"
ready=$("$work/startready" -ddi "$DDI" -control-plane http://127.0.0.1:$CP_PORT -n 10 -cpu 1 | tail -1)
echo "- sidecar start to ready, $ready of 10 starts (target <= 10 ms)"
} | tee "$OUT/sidecar-$(date -u +%Y%m%d-%H%M).md"
