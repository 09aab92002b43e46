#!/usr/bin/env bash
# A real OCI registry on loopback: the CNCF distribution registry, built
# from the Go module proxy into the cache folder the first time.
#
# Usage: hack/registry.sh VERB DIR
#   start DIR [ADDR]  start a registry that keeps its blobs in DIR/data, on
#                     ADDR (e.g. 127.0.0.1:5001) or else on a free loopback
#                     port; print its address (HOST:PORT). When one runs for
#                     DIR already, print its address and start nothing.
#   stop DIR          stop the registry of DIR (its data stays); safe twice
#   addr DIR          print the address of the registry of DIR, or fail
#   build             only build the registry binary; print its path
#
# Push to it with hack/release.sh --registry "$(hack/registry.sh addr DIR)".
# It speaks plain HTTP: clients that talk HTTPS to any other host than
# loopback need it named as insecure (docs/install.md).
#
# Files in DIR: config.yml, data/, registry.log, registry.pid, addr.
#
# Environment:
#   DDI_CACHE   cache root [<repo>/.cache]; the binary goes to
#               $DDI_CACHE/registry/v3.1.2/registry
set -euo pipefail

readonly REGISTRY_VERSION=v3.1.2
readonly REGISTRY_MOD=github.com/distribution/distribution/v3/cmd/registry

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
DDI_CACHE=${DDI_CACHE:-$REPO/.cache}
readonly BIN_DIR=$DDI_CACHE/registry/$REGISTRY_VERSION
readonly REGISTRY_BIN=$BIN_DIR/registry
# sudo's secure_path hides a Go installed in /usr/local/go.
[[ -d /usr/local/go/bin && ":$PATH:" != *":/usr/local/go/bin:"* ]] && PATH=$PATH:/usr/local/go/bin
export PATH

log() { printf '[registry %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; }

# build: go install the registry into $BIN_DIR unless it is there (about 2
# minutes cold on two cores).
build() {
	[[ -x $REGISTRY_BIN ]] && return 0
	command -v go >/dev/null || die "go not found in PATH (install Go 1.26, or add /usr/local/go/bin)"
	mkdir -p "$BIN_DIR"
	local lock=$BIN_DIR/.lock
	exec 8>"$lock"
	command -v flock >/dev/null && flock 8
	[[ -x $REGISTRY_BIN ]] && return 0
	log "building the distribution registry $REGISTRY_VERSION into $BIN_DIR (about 2 minutes the first time)"
	local t=$SECONDS
	GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN=$BIN_DIR \
		go install -trimpath -ldflags='-s -w' "$REGISTRY_MOD@$REGISTRY_VERSION" >&2
	[[ -x $REGISTRY_BIN ]] || die "go install $REGISTRY_MOD@$REGISTRY_VERSION produced no $REGISTRY_BIN"
	log "built the registry in $((SECONDS - t)) s"
}

# running DIR: whether the registry of DIR runs (its pid file names a live
# registry process).
running() {
	local pid
	[[ -f $1/registry.pid ]] || return 1
	pid=$(<"$1/registry.pid")
	[[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "registry serve $1/config.yml"
}

# answers ADDR: whether GET /v2/ answers 200 on ADDR.
answers() { curl -fsS -o /dev/null --max-time 2 "http://$1/v2/" 2>/dev/null; }

# free_port: a loopback TCP port nothing listens on now.
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + (RANDOM % 20000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	die "found no free loopback port in 50 tries"
}

# launch DIR ADDR: start the registry of DIR on ADDR; wait until it answers.
launch() {
	local dir=$1 addr=$2
	cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
  # One registry, not a fleet behind a load balancer: a fresh secret each start.
  secret: $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
health:
  storagedriver:
    enabled: false
EOF
	mkdir -p "$dir/data"
	# OTEL_TRACES_EXPORTER=none: the registry would otherwise try to send
	# traces to a collector on localhost.
	OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
		setsid "$REGISTRY_BIN" serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
	local pid=$!
	printf '%s\n' "$pid" >"$dir/registry.pid"
	for _ in $(seq 1 100); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$dir/registry.pid"
			return 1
		fi
		if answers "$addr"; then
			printf '%s\n' "$addr" >"$dir/addr"
			return 0
		fi
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	rm -f "$dir/registry.pid"
	die "the registry on $addr did not answer within 10 s (log: $dir/registry.log)"
}

cmd_start() {
	local dir=$1 addr=${2:-}
	command -v curl >/dev/null || die "curl not found (apt-get install curl)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if running "$dir" && answers "$(<"$dir/addr")"; then
		cat "$dir/addr"
		return 0
	fi
	build
	if [[ -n $addr ]]; then
		launch "$dir" "$addr" || die "the registry could not listen on $addr (log: $dir/registry.log)"
	else
		for _ in 1 2 3 4 5; do
			# Another process may take the port between the check and the
			# listen: then the registry exits and another port is tried.
			addr=127.0.0.1:$(free_port)
			launch "$dir" "$addr" && break
			addr=
		done
		[[ -n $addr ]] || die "the registry exited five times on start (log: $dir/registry.log)"
	fi
	log "registry $REGISTRY_VERSION on http://$addr, data in $dir/data"
	printf '%s\n' "$addr"
}

cmd_stop() {
	local dir=$1 pid
	[[ -d $dir ]] || return 0
	dir=$(cd "$dir" && pwd)
	if running "$dir"; then
		pid=$(<"$dir/registry.pid")
		kill "$pid"
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	fi
	rm -f "$dir/registry.pid" "$dir/addr"
}

cmd_addr() {
	local dir=$1
	[[ -d $dir ]] && dir=$(cd "$dir" && pwd)
	running "$dir" || die "no registry runs for $dir: hack/registry.sh start $dir"
	cat "$dir/addr"
}

case ${1:-} in
start) [[ $# -ge 2 && $# -le 3 ]] || { usage; exit 2; }; cmd_start "$2" "${3:-}" ;;
stop) [[ $# -eq 2 ]] || { usage; exit 2; }; cmd_stop "$2" ;;
addr) [[ $# -eq 2 ]] || { usage; exit 2; }; cmd_addr "$2" ;;
build) build; printf '%s\n' "$REGISTRY_BIN" ;;
-h | --help | help) usage ;;
*) usage; exit 2 ;;
esac
