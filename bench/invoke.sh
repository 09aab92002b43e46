#!/usr/bin/env bash
# The invoke path side by side, in one run: a direct call to the provider,
# nginx (Debian package, one worker, kept-alive upstream), the standard
# library's httputil.ReverseProxy (bench/stockproxy), a proxy built on
# valyala/fasthttp (bench/fasthttpproxy, its own module), and the ddi
# sidecar's invoke; plus the sidecar's resolve against the direct call.
#
# wrk (Debian) is pinned to CPU 0; everything under test (provider, control
# plane, nginx, stockproxy, sidecar) to CPU 1. Cases are interleaved: each
# of RUNS rounds runs every case once, at c=1 and c=16. Reported per case:
# median req/s, p50, p99, CPU microseconds per request of the proxy
# process (utime+stime from /proc over the run; the provider's own for the
# direct call) and the proxy's RSS after the runs.
#
# Usage: bench/invoke.sh   (DURATION=5 RUNS=3; writes bench/results/invoke-<date>.md)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
OUT=bench/results
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

go build -tags nokube -o "$work/ddi" ./cmd/ddi
go build -o "$work/stockproxy" ./bench/stockproxy
(cd bench/fasthttpproxy && go build -o "$work/fasthttpproxy" .)
DDI="$work/ddi"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { for _ in $(seq 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "not ready: $1" >&2; return 1; }

CP_PORT=$(free_port); SC_PORT=$(free_port); NGX_PORT=$(free_port); STOCK_PORT=$(free_port); FAST_PORT=$(free_port)
taskset -c 1 "$DDI" --log-level error dev --data "$work/data" --listen 127.0.0.1:$CP_PORT & pids+=($!)
wait_http http://127.0.0.1:$CP_PORT/readyz
taskset -c 1 "$DDI" demo greeter --version 1.0.0 > "$work/greeter.out" 2>"$work/greeter.log" & PROV_PID=$!; pids+=($PROV_PID)
for _ in $(seq 100); do grep -q listening "$work/greeter.out" 2>/dev/null && break; sleep 0.05; done
PROVIDER=$(awk '{print $3}' "$work/greeter.out")
"$DDI" --control-plane http://127.0.0.1:$CP_PORT provider add greeter --type http --version 1.0.0 --url "http://$PROVIDER" >/dev/null
taskset -c 1 "$DDI" --control-plane http://127.0.0.1:$CP_PORT --log-level error sidecar --name bench --dep greeter=greeter --listen 127.0.0.1:$SC_PORT 2>"$work/sidecar.log" & SC_PID=$!; pids+=($SC_PID)
wait_http http://127.0.0.1:$SC_PORT/readyz

taskset -c 1 "$work/stockproxy" -listen 127.0.0.1:$STOCK_PORT -upstream "http://$PROVIDER" 2>"$work/stock.log" & STOCK_PID=$!; pids+=($STOCK_PID)
wait_http http://127.0.0.1:$STOCK_PORT/
taskset -c 1 "$work/fasthttpproxy" -listen 127.0.0.1:$FAST_PORT -upstream "$PROVIDER" 2>"$work/fasthttp.log" & FAST_PID=$!; pids+=($FAST_PID)
wait_http http://127.0.0.1:$FAST_PORT/

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream provider { server $PROVIDER; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / {
      proxy_pass http://provider;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
EOF
taskset -c 1 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>"$work/nginx/stderr" & pids+=($!)
wait_http http://127.0.0.1:$NGX_PORT/
NGX_WORKER=$(pgrep -P "$(cat "$work/nginx/nginx.pid")" | head -1)

cpu_ticks() {
  [ -r "/proc/$1/stat" ] || { echo "process $1 is gone; its log:" >&2; cat "$work"/*.log >&2 2>/dev/null; exit 1; }
  awk '{print $14+$15}' "/proc/$1/stat"
}
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
TICK=$(getconf CLK_TCK)

# run_one NAME URL CONC PID -> appends "rps p50_ms p99_ms cpu_us_per_req non2xx" to $work/NAME-CONC.runs
run_one() {
  local name=$1 url=$2 c=$3 pid=$4 t0 t1
  t0=$(cpu_ticks "$pid")
  taskset -c 0 wrk -t1 -c"$c" -d"${DURATION}s" --latency "$url" > "$work/out.txt"
  t1=$(cpu_ticks "$pid")
  python3 - "$work/out.txt" "$((t1 - t0))" "$TICK" >> "$work/$name-$c.runs" <<'PY'
import re,sys
t=open(sys.argv[1]).read(); ticks=int(sys.argv[2]); hz=int(sys.argv[3])
def ms(s):
    v,u=re.match(r'([\d.]+)(\w+)',s).groups(); v=float(v)
    return v/1000 if u=='us' else v*1000 if u=='s' else v
rps=float(re.search(r'Requests/sec:\s+([\d.]+)',t).group(1))
reqs=int(re.search(r'(\d+) requests in',t).group(1))
p50=ms(re.search(r'\s50%\s+(\S+)',t).group(1)); p99=ms(re.search(r'\s99%\s+(\S+)',t).group(1))
errs=re.search(r'Non-2xx or 3xx responses: (\d+)',t)
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {ticks*1e6/hz/max(reqs,1):.1f} {errs.group(1) if errs else 0}")
PY
}

declare -A URL PID
URL[direct]="http://$PROVIDER/";                         PID[direct]=$PROV_PID
URL[nginx]="http://127.0.0.1:$NGX_PORT/";                PID[nginx]=$NGX_WORKER
URL[stock]="http://127.0.0.1:$STOCK_PORT/";              PID[stock]=$STOCK_PID
URL[fasthttp]="http://127.0.0.1:$FAST_PORT/";            PID[fasthttp]=$FAST_PID
URL[ddi]="http://127.0.0.1:$SC_PORT/v1/invoke/greeter/"; PID[ddi]=$SC_PID
URL[resolve]="http://127.0.0.1:$SC_PORT/v1/bindings/greeter"; PID[resolve]=$SC_PID
CASES=(direct nginx stock fasthttp ddi resolve)

load=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$RUNS"); do
  for c in 1 16; do
    for name in "${CASES[@]}"; do
      run_one "$name" "${URL[$name]}" "$c" "${PID[$name]}"
    done
  done
  echo "round $r of $RUNS done" >&2
done
for name in nginx stock fasthttp ddi; do echo "$name $(rss_kib "${PID[$name]}")" >> "$work/rss"; done
echo "direct $(rss_kib "$PROV_PID")" >> "$work/rss"

{
echo "# Invoke side by side, $(date -u +%Y-%m-%d)"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), $(go version | awk '{print $3}'), $(nginx -v 2>&1 | cut -d' ' -f3)."
echo "wrk pinned to CPU 0; provider, control plane, nginx, stockproxy, fasthttpproxy and sidecar pinned to CPU 1; ${DURATION}s runs, ${RUNS} interleaved rounds, median by req/s. Load average at start: $load."
echo
python3 - "$work" "${CASES[@]}" <<'PY'
import sys,os
work=sys.argv[1]; cases=sys.argv[2:]
rss={l.split()[0]:int(l.split()[1]) for l in open(os.path.join(work,'rss'))}
med={}
print("| case | conc | req/s (runs) | p50 ms | p99 ms | CPU us/req | RSS MiB | non-2xx |")
print("|---|---|---|---|---|---|---|---|")
for c in ('1','16'):
    for n in cases:
        runs=[l.split() for l in open(os.path.join(work,f'{n}-{c}.runs'))]
        runs.sort(key=lambda r: float(r[0]))
        m=runs[len(runs)//2]; med[(n,c)]=[float(x) for x in m]
        all_rps="/".join(r[0] for r in runs)
        mem=rss.get(n); mem=f"{mem/1024:.0f}" if mem else "-"
        who={"direct":" (provider)","resolve":" (sidecar)"}.get(n,"")
        print(f"| {n} | {c} | {m[0]} ({all_rps}) | {m[1]} | {m[2]} | {m[3]}{who} | {mem} | {m[4]} |")
print()
d=med
# Ratios are taken within each round (the cases of a round run back to
# back, so a noisy neighbour weighs on both sides alike), then the median
# over rounds, with the range.
raw={}
for c in ('1','16'):
    for n in cases:
        raw[(n,c)]=[[float(x) for x in l.split()] for l in open(os.path.join(work,f'{n}-{c}.runs'))]
def ratio(a,b,c,i=0):
    rs=sorted(x[i]/y[i] for x,y in zip(raw[(a,c)],raw[(b,c)]))
    return f"{100*rs[len(rs)//2]:.0f}% ({100*rs[0]:.0f}-{100*rs[-1]:.0f}%)"
def added(a,c='1'):
    rs=sorted(1000*(x[1]-y[1]) for x,y in zip(raw[(a,c)],raw[('direct',c)]))
    return f"+{rs[len(rs)//2]:.0f} us ({rs[0]:.0f} to {rs[-1]:.0f})"
print("Ratios within each round, median over rounds (range):")
print(f"- req/s at c=16, share of direct: ddi {ratio('ddi','direct','16')}, nginx {ratio('nginx','direct','16')}, stock {ratio('stock','direct','16')}, fasthttp {ratio('fasthttp','direct','16')}")
print(f"- **ddi / nginx req/s at c=16: {ratio('ddi','nginx','16')}** (target >= 100%); ddi / stock: {ratio('ddi','stock','16')}; ddi / fasthttp: {ratio('ddi','fasthttp','16')}")
print(f"- ddi / nginx req/s at c=1: {ratio('ddi','nginx','1')}")
print(f"- **ddi / nginx CPU per request at c=16: {ratio('ddi','nginx','16',3)}** (target <= 100%); at c=1: {ratio('ddi','nginx','1',3)}; fasthttp / nginx at c=16: {ratio('fasthttp','nginx','16',3)}; stock / nginx: {ratio('stock','nginx','16',3)}")
print(f"- added p50 at c=1 over direct: ddi {added('ddi')}, nginx {added('nginx')}, fasthttp {added('fasthttp')}, stock {added('stock')} (target: ddi <= nginx)")
print(f"- resolve / direct req/s at c=16: {ratio('resolve','direct','16')} (target >= 95%)")
PY
} | tee "$OUT/invoke-$(date -u +%Y%m%d-%H%M).md"
