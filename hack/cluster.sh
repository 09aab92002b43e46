#!/usr/bin/env bash
# A real single-node Kubernetes with Knative Serving on this machine, without
# internet or Docker: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd + runc + CNI bridge, kubelet, kube-proxy
# (iptables), a cluster DNS server, Knative Serving v0.42.2 (controller,
# autoscaler, activator and webhook as pods) and a small KIngress
# implementation. Images are built locally, pushed to a real OCI registry
# on loopback (the CNCF distribution registry, hack/registry.sh), and
# pulled from there by containerd: ddi.local/..., dev.local/... and
# ghcr.io/... names resolve to that registry (a hosts.toml mirror per name).
#
# Usage: hack/cluster.sh VERB [ARGS]   (as root)
#   up                  start everything (builds what is missing first);
#                       prints the kubeconfig path last
#   down                stop everything and remove all it created; safe twice
#   status              components, node, pods, how to reach a Knative Service
#   build               only build binaries and images (no cluster needed)
#   image REF SRC [IMGPACK FLAGS...]
#                       pack SRC (a static binary, or a folder holding a Go
#                       main package, built with CGO_ENABLED=0) as image REF
#                       (e.g. ddi.local/ddi:dev), user 65532 unless a -user
#                       flag says otherwise, and push it to the cluster's
#                       registry when the cluster is up; prints the tarball
#                       path
#   smoke               prove the running cluster: a Knative Service answers
#                       through the KIngress and from a pod, scales to zero
#                       and wakes up (DDI_SMOKE_ZERO=0 skips scale to zero)
#   restart COMPONENT   stop one host component and start it again as up
#                       does (same flags, log and pid file), wait until it
#                       is healthy, print the milliseconds that took:
#                       etcd, kube-apiserver, kube-controller-manager,
#                       kube-scheduler, containerd (its containers keep
#                       running), kubelet, kube-proxy, clusterdns, kingress
#   kubeconfig          print the admin kubeconfig path
#   env                 print shell exports (KUBECONFIG, ingress address)
#
# Environment (defaults in brackets):
#   DDI_CACHE                  build cache [<repo>/.cache]
#   DDI_CLUSTER_STATE          state, logs, kubeconfig [/var/lib/ddi-cluster]
#   DDI_CLUSTER_POD_CIDR       pod subnet; its .1 is the bridge and node IP [10.217.0.0/24]
#   DDI_CLUSTER_SERVICE_CIDR   ClusterIP range [10.217.1.0/24]
#   DDI_CLUSTER_BRIDGE         bridge name [ddi0]
#   DDI_CLUSTER_NODE           node name [ddi-local]
#   DDI_CLUSTER_INGRESS_PORT   KIngress port on 127.0.0.1 [31080]
#   DDI_CLUSTER_HOST_PORTS     extra TCP ports on the node IP that pods may reach []
#   DDI_CLUSTER_KNATIVE        1 to install Knative Serving, 0 to skip [1]
#   DDI_CLUSTER_REGISTRY       the registry's loopback address [127.0.0.1:5001]
#   DDI_BUILD_P                go build -p [2]
#
# Ports: registry 127.0.0.1:5001, kube-apiserver NODE_IP:6443, etcd 127.0.0.1:12379-12380, cluster DNS
# NODE_IP:53, KIngress 127.0.0.1:31080 (public) and NODE_IP:80 (pods),
# kubelet NODE_IP:10250, health ports on 127.0.0.1 (10248 kubelet, 10256
# kube-proxy, 10257 controller-manager, 10259 scheduler).
set -euo pipefail

readonly KUBE_VERSION=v1.37.2
readonly KNATIVE_VERSION=v0.42.2
readonly KNATIVE_MOD_SERVING=knative.dev/serving@v0.42.2
readonly KNATIVE_NETWORKING=knative.dev/networking
readonly KNATIVE_CACHING=knative.dev/caching
readonly IMAGE_REGISTRY=ddi.local
readonly PAUSE_IMAGE=$IMAGE_REGISTRY/pause:v1
readonly HELLO_IMAGE=$IMAGE_REGISTRY/hello:v1
readonly FETCH_IMAGE=$IMAGE_REGISTRY/fetch:v1
readonly INGRESS_CLASS=kingress.ddi.dev
readonly KNATIVE_COMPONENTS=(controller autoscaler activator webhook queue)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly HACK_CLUSTER=$REPO/hack/cluster
DDI_CACHE=${DDI_CACHE:-$REPO/.cache}
readonly KUBE_BINS=$DDI_CACHE/kube/$KUBE_VERSION
# sudo's secure_path hides a Go installed in /usr/local/go, and kubectl may
# be the one hack/kube-bins.sh linked or built into $KUBE_BINS: look there
# too, so that `sudo hack/cluster.sh up` works as the README prints it.
for d in /usr/local/go/bin "$KUBE_BINS"; do
	[[ -d $d && ":$PATH:" != *":$d:"* ]] && PATH=$PATH:$d
done
export PATH
readonly CCACHE=$DDI_CACHE/cluster
readonly BIN=$CCACHE/bin
readonly IMAGES=$CCACHE/images
readonly STATE=${DDI_CLUSTER_STATE:-/var/lib/ddi-cluster}
readonly POD_CIDR=${DDI_CLUSTER_POD_CIDR:-10.217.0.0/24}
readonly SERVICE_CIDR=${DDI_CLUSTER_SERVICE_CIDR:-10.217.1.0/24}
readonly BRIDGE=${DDI_CLUSTER_BRIDGE:-ddi0}
readonly NODE=${DDI_CLUSTER_NODE:-ddi-local}
readonly INGRESS_PORT=${DDI_CLUSTER_INGRESS_PORT:-31080}
readonly HOST_PORTS=${DDI_CLUSTER_HOST_PORTS:-}
readonly WITH_KNATIVE=${DDI_CLUSTER_KNATIVE:-1}
readonly REGISTRY_ADDR=${DDI_CLUSTER_REGISTRY:-127.0.0.1:5001}
# Registries whose names containerd pulls from the local registry. dev.local
# is one of the names Knative's conformance tests accept without an image
# digest (hack/knative-conformance.sh names its test images so).
readonly MIRRORED=("$IMAGE_REGISTRY" ghcr.io dev.local)
readonly BUILD_P=${DDI_BUILD_P:-2}

readonly PKI=$STATE/pki
readonly LOGS=$STATE/logs
readonly PIDS=$STATE/pids
readonly CONF=$STATE/conf
readonly KUBECONFIG_ADMIN=$STATE/kubeconfig
readonly CTD_DIR=$STATE/containerd
readonly CTD_SOCK=$CTD_DIR/containerd.sock
readonly REGISTRY_DIR=$STATE/registry
readonly ETCD_PORT=12379
readonly APISERVER_PORT=6443
readonly KUBE_PROXY_CHAINS_TABLES=(filter nat mangle)
readonly FW_CHAIN_IN=DDI-CLUSTER-INPUT
readonly FW_CHAIN_FWD=DDI-CLUSTER-FORWARD
# Folders outside the state folder that the components create at fixed
# paths; down removes those that did not exist before up.
readonly HOST_DIRS=(/run/containerd /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /usr/libexec/kubernetes)

# ip_at CIDR N: the CIDR's network address plus N (IPv4).
ip_at() {
	local net=${1%/*} a b c d n
	IFS=. read -r a b c d <<<"$net"
	n=$(((a << 24) + (b << 16) + (c << 8) + d + $2))
	printf '%d.%d.%d.%d' $(((n >> 24) & 255)) $(((n >> 16) & 255)) $(((n >> 8) & 255)) $((n & 255))
}
NODE_IP=$(ip_at "$POD_CIDR" 1)
readonly NODE_IP
API_SERVICE_IP=$(ip_at "$SERVICE_CIDR" 1)
readonly API_SERVICE_IP
readonly POD_PREFIX=${POD_CIDR#*/}

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
# Should a proxy be configured for the registries, the cluster's own
# addresses must never go through it.
NO_PROXY="${NO_PROXY:+$NO_PROXY,}127.0.0.1,localhost,$NODE_IP,$POD_CIDR,$SERVICE_CIDR,.svc,.cluster.local"
export NO_PROXY no_proxy=$NO_PROXY
export GOFLAGS="-mod=readonly -buildvcs=false"

T0=$(date +%s)
log() { printf '[cluster %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - T0))" "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2; }

need_root() { [[ $(id -u) -eq 0 ]] || die "run as root (needs containerd, mounts, iptables)"; }

kc() { kubectl --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# wait_for DESC SECONDS CMD...: retry CMD every half second until it succeeds.
wait_for() {
	local desc=$1 secs=$2
	shift 2
	local deadline=$(($(date +%s) + secs))
	until "$@" >/dev/null 2>&1; do
		if (($(date +%s) >= deadline)); then
			log "timed out after ${secs}s waiting for $desc"
			return 1
		fi
		sleep 0.5
	done
}

# --- packages ----------------------------------------------------------------
ensure_packages() {
	local want=(containerd runc containernetworking-plugins iptables conntrack openssl curl iproute2) missing=() p
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if ! command -v kubectl >/dev/null; then
		log "kubectl not found: hack/kube-bins.sh links or builds one into $KUBE_BINS"
		DDI_CACHE=$DDI_CACHE DDI_BUILD_P=$BUILD_P "$REPO/hack/kube-bins.sh" all >/dev/null
		command -v kubectl >/dev/null || die "kubectl not found, and hack/kube-bins.sh put none in $KUBE_BINS"
	fi
	[[ ${#missing[@]} -eq 0 ]] && return 0
	log "installing Debian packages: ${missing[*]}"
	apt-get update -qq
	# Debian's containerd would try to start its own service: do not let it.
	DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# --- builds ------------------------------------------------------------------
# src_hash DIR...: a hash of the Go sources and module files under DIRs.
src_hash() {
	find "$@" -type f \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) -print0 |
		LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

# build_go MODULE_DIR STAMP_INPUTS OUT_NAME PACKAGE: go build unless the
# stamp for OUT_NAME matches the hash of STAMP_INPUTS (a space-separated list).
build_go() {
	local mod=$1 inputs=$2 out=$3 pkg=$4 h
	# shellcheck disable=SC2086
	h=$(cd "$mod" && src_hash $inputs)
	if [[ -x $BIN/$out && -f $BIN/.$out.stamp && $(<"$BIN/.$out.stamp") == "$h" ]]; then
		return 0
	fi
	log "building $out ($pkg)"
	local t
	t=$(date +%s)
	(cd "$mod" && go build -p "$BUILD_P" -trimpath -ldflags "-s -w" -o "$BIN/$out.tmp" "$pkg")
	mv -f "$BIN/$out.tmp" "$BIN/$out"
	printf '%s\n' "$h" >"$BIN/.$out.stamp"
	log "built $out in $(($(date +%s) - t))s"
}

build_binaries() {
	mkdir -p "$BIN"
	local b
	for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
		[[ -x $KUBE_BINS/$b ]] && continue
		log "$b missing in $KUBE_BINS: building with hack/kube-bins.sh all"
		DDI_CACHE=$DDI_CACHE DDI_BUILD_P=$BUILD_P "$REPO/hack/kube-bins.sh" all >/dev/null
		break
	done
	build_go "$HACK_CLUSTER/static" "go.mod pause" pause ./pause
	build_go "$HACK_CLUSTER/static" "go.mod runcwrap" runcwrap ./runcwrap
	build_go "$HACK_CLUSTER/static" "go.mod hello" hello ./hello
	build_go "$HACK_CLUSTER/static" "go.mod fetch" fetch ./fetch
	build_go "$HACK_CLUSTER/imgpack" "." imgpack .
	build_go "$HACK_CLUSTER/knative" "go.mod go.sum kingress" kingress ./kingress
	build_go "$HACK_CLUSTER/knative" "go.mod go.sum clusterdns" clusterdns ./clusterdns
	build_go "$HACK_CLUSTER/knative" "go.mod go.sum crireset" crireset ./crireset
	# Knative's own commands: one go build so shared packages compile once.
	local h missing=() c
	h=$(cd "$HACK_CLUSTER/knative" && src_hash go.mod go.sum tools.go)
	for c in "${KNATIVE_COMPONENTS[@]}"; do
		if [[ ! -x $BIN/knative-$c || ! -f $BIN/.knative-$c.stamp || $(<"$BIN/.knative-$c.stamp") != "$h" ]]; then
			missing+=("$c")
		fi
	done
	if [[ ${#missing[@]} -gt 0 ]]; then
		log "building Knative Serving $KNATIVE_VERSION: ${missing[*]} (several minutes when cold)"
		local t tmp pkgs=()
		t=$(date +%s)
		tmp=$(mktemp -d "$BIN/.knative.XXXXXX")
		for c in "${missing[@]}"; do pkgs+=("knative.dev/serving/cmd/$c"); done
		(cd "$HACK_CLUSTER/knative" && go build -p "$BUILD_P" -trimpath -ldflags "-s -w" -o "$tmp/" "${pkgs[@]}")
		for c in "${missing[@]}"; do
			mv -f "$tmp/$c" "$BIN/knative-$c"
			printf '%s\n' "$h" >"$BIN/.knative-$c.stamp"
		done
		rm -rf "$tmp"
		log "built Knative in $(($(date +%s) - t))s"
	fi
}

# image_tar REF: the tarball path for an image reference.
image_tar() { printf '%s/%s.tar' "$IMAGES" "$(printf '%s' "$1" | tr '/:@' '___')"; }

# pack_image REF BINARY [IMGPACK FLAGS...]: pack BINARY as /ko-app/NAME into
# REF, unless the same binary was packed with the same flags before. Runs as
# 65532 unless a -user flag is given. Prints the tarball path.
pack_image() {
	local ref=$1 src=$2
	shift 2
	local tar stamp
	tar=$(image_tar "$ref")
	mkdir -p "$IMAGES"
	local user=(-user 65532) a
	for a in "$@"; do [[ $a == -user || $a == --user || $a == -user=* || $a == --user=* ]] && user=(); done
	local dest args
	dest=/ko-app/$(basename "$src")
	args=(-t "$ref" "${user[@]}" -env KO_DATA_PATH=/var/run/ko "$@" "$src:$dest")
	stamp=$({ sha256sum "$src" "$BIN/imgpack" | cut -d' ' -f1; printf '%s\n' "${args[@]}"; } | sha256sum | cut -c1-16)
	if [[ -f $tar && -f $tar.stamp && $(<"$tar.stamp") == "$stamp" ]]; then
		printf '%s\n' "$tar"
		return 0
	fi
	"$BIN/imgpack" -o "$tar" "${args[@]}" >&2
	printf '%s\n' "$stamp" >"$tar.stamp"
	printf '%s\n' "$tar"
}

build_images() {
	mkdir -p "$IMAGES"
	pack_image "$PAUSE_IMAGE" "$BIN/pause" -user "65535:65535" >/dev/null
	pack_image "$HELLO_IMAGE" "$BIN/hello" -port 8080 >/dev/null
	pack_image "$FETCH_IMAGE" "$BIN/fetch" >/dev/null
	local c
	for c in "${KNATIVE_COMPONENTS[@]}"; do
		pack_image "$IMAGE_REGISTRY/knative/$c:$KNATIVE_VERSION" "$BIN/knative-$c" >/dev/null
	done
}

# push_image TAR: push to the cluster's registry, whence containerd pulls
# it (ddi.local/NAME:TAG is pushed as REGISTRY_ADDR/NAME:TAG).
push_image() {
	"$BIN/imgpack" -push "$REGISTRY_ADDR" "$1" >/dev/null
}

push_images() {
	local t
	for t in "$IMAGES"/*.tar; do
		[[ -e $t ]] || continue
		push_image "$t"
	done
}

registry_running() { "$REPO/hack/registry.sh" addr "$REGISTRY_DIR" >/dev/null 2>&1; }

start_registry() {
	"$REPO/hack/registry.sh" start "$REGISTRY_DIR" "$REGISTRY_ADDR" >/dev/null
	log "registry: running on $REGISTRY_ADDR (data in $REGISTRY_DIR)"
}

# --- processes ---------------------------------------------------------------
# start_daemon NAME CMD...: start CMD in its own session, logging to
# $LOGS/NAME.log, unless NAME is already running.
start_daemon() {
	local name=$1
	shift
	if running "$name"; then
		if [[ $(readlink "/proc/$(<"$PIDS/$name.pid")/exe") == *" (deleted)" ]]; then
			log "$name: binary was rebuilt, restarting"
			stop_daemons 10 "$name"
		else
			log "$name: already running (pid $(<"$PIDS/$name.pid"))"
			return 0
		fi
	fi
	mkdir -p "$LOGS" "$PIDS"
	rm -f "$PIDS/$name.pid"
	printf '%s\n' "$1" >"$PIDS/$name.exe"
	# The inner shell writes its own PID, then becomes CMD.
	# No proxy: every address the cluster talks to is on this machine.
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u all_proxy \
		bash -c 'echo $$ >"$0"; exec "$@"' "$PIDS/$name.pid" "$@" \
		>>"$LOGS/$name.log" 2>&1 </dev/null &
	local i
	for i in $(seq 50); do
		[[ -s $PIDS/$name.pid ]] && break
		sleep 0.1
	done
	log "$name: started (pid $(<"$PIDS/$name.pid"), log $LOGS/$name.log)"
}

# running NAME: whether NAME's recorded process is alive and still NAME's binary.
running() {
	local name=$1 pid exe
	[[ -f $PIDS/$name.pid ]] || return 1
	pid=$(<"$PIDS/$name.pid")
	[[ -n $pid && -d /proc/$pid ]] || return 1
	exe=$(<"$PIDS/$name.exe")
	# A rebuilt binary shows as "PATH (deleted)" in a process started before.
	local actual
	actual=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[[ ${actual% (deleted)} == "$(readlink -f "$exe")" ]]
}

# stop_daemons SECONDS NAME...: TERM the named daemons together, wait up to
# SECONDS for them to exit, then KILL what is left.
stop_daemons() {
	local secs=$1 name pid
	shift
	local pids=() names=()
	for name in "$@"; do
		if running "$name"; then
			pid=$(<"$PIDS/$name.pid")
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			names+=("$name")
		fi
		rm -f "$PIDS/$name.pid"
	done
	[[ ${#pids[@]} -gt 0 ]] || return 0
	local deadline=$(($(date +%s) + secs)) alive i
	while :; do
		alive=0
		for pid in "${pids[@]}"; do [[ -d /proc/$pid ]] && alive=1; done
		[[ $alive == 0 ]] && break
		(($(date +%s) < deadline)) || break
		sleep 0.2
	done
	for i in "${!pids[@]}"; do
		if [[ -d /proc/${pids[$i]} ]]; then
			log "${names[$i]}: still running after ${secs}s, killing"
			kill -KILL "${pids[$i]}" 2>/dev/null || true
		fi
	done
	log "stopped: ${names[*]}"
}

# --- PKI and kubeconfigs -------------------------------------------------------
# cert NAME CN ORG EKU [SANS]: an EC key and a certificate signed by the CA.
cert() {
	local name=$1 cn=$2 org=$3 eku=$4 sans=${5:-}
	[[ -f $PKI/$name.crt && -f $PKI/$name.key ]] && return 0
	local subj="/CN=$cn"
	[[ -n $org ]] && subj+="/O=$org"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$PKI/$name.key" -out "$PKI/$name.csr" -subj "$subj" 2>/dev/null
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		[[ -n $sans ]] && echo "subjectAltName=$sans"
	} >"$PKI/$name.ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
		-CAcreateserial -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

# kubeconfig FILE CERT_NAME: a kubeconfig with embedded certificates.
kubeconfig() {
	local file=$1 name=$2
	write_file "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ddi-local
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$name.crt")
    client-key-data: $(base64 -w0 "$PKI/$name.key")
contexts:
- name: ddi-local
  context: {cluster: ddi-local, user: $name}
current-context: ddi-local
EOF
	chmod 600 "$file"
}

make_pki() {
	mkdir -p "$PKI" "$CONF"
	chmod 700 "$PKI"
	if [[ ! -f $PKI/ca.crt ]]; then
		openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 3650 -subj "/CN=ddi-local-ca" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
	fi
	if [[ ! -f $PKI/sa.key ]]; then
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$PKI/sa.key" 2>/dev/null
		openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
	fi
	cert apiserver kube-apiserver "" serverAuth \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1"
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth
	cert admin kubernetes-admin system:masters clientAuth
	cert controller-manager system:kube-controller-manager "" clientAuth
	cert scheduler system:kube-scheduler "" clientAuth
	cert kube-proxy system:kube-proxy "" clientAuth
	cert kubelet-client "system:node:$NODE" system:nodes clientAuth
	cert kubelet "$NODE" "" serverAuth "DNS:$NODE,IP:$NODE_IP"
	kubeconfig "$KUBECONFIG_ADMIN" admin
	kubeconfig "$CONF/controller-manager.kubeconfig" controller-manager
	kubeconfig "$CONF/scheduler.kubeconfig" scheduler
	kubeconfig "$CONF/kube-proxy.kubeconfig" kube-proxy
	kubeconfig "$CONF/kubelet.kubeconfig" kubelet-client
}

# --- host network ----------------------------------------------------------------
# remember KEY VALUE: record something up changed, for down to undo.
remember() { mkdir -p "$STATE"; printf '%s=%s\n' "$1" "$2" >>"$STATE/undo"; }
recalled() { [[ -f $STATE/undo ]] && grep -m1 "^$1=" "$STATE/undo" | cut -d= -f2-; }

net_up() {
	local v
	v=$(cat /proc/sys/net/ipv4/ip_forward)
	if [[ $v != 1 ]]; then
		[[ -n $(recalled ip_forward) ]] || remember ip_forward "$v"
		echo 1 >/proc/sys/net/ipv4/ip_forward
	fi
	if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
		v=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables)
		if [[ $v != 1 ]]; then
			[[ -n $(recalled bridge_nf_call_iptables) ]] || remember bridge_nf_call_iptables "$v"
			echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
		fi
	fi
	local d
	for d in "${HOST_DIRS[@]}"; do
		[[ -e $d || -n $(recalled "created:$d") ]] || remember "created:$d" 1
	done
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge
		log "network: created bridge $BRIDGE"
	fi
	ip addr replace "$NODE_IP/$POD_PREFIX" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# Service IPs without a kube-proxy rule must never leave through the
	# default route: send the whole range to the bridge, sourced from the node IP.
	ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
	firewall_up
}

# Pods may reach only the node ports the cluster serves, and nothing beyond
# the bridge. The rules live in the mangle table, where kube-proxy's chains
# (filter, nat) cannot be placed before them.
firewall_up() {
	local mangle=(iptables -w 5 -t mangle)
	"${mangle[@]}" -N "$FW_CHAIN_IN" 2>/dev/null || "${mangle[@]}" -F "$FW_CHAIN_IN"
	"${mangle[@]}" -N "$FW_CHAIN_FWD" 2>/dev/null || "${mangle[@]}" -F "$FW_CHAIN_FWD"
	"${mangle[@]}" -A "$FW_CHAIN_IN" -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
	"${mangle[@]}" -A "$FW_CHAIN_IN" -p udp --dport 53 -d "$NODE_IP" -j RETURN
	local p
	for p in 53 80 "$APISERVER_PORT" $HOST_PORTS; do
		"${mangle[@]}" -A "$FW_CHAIN_IN" -p tcp --dport "$p" -d "$NODE_IP" -j RETURN
	done
	"${mangle[@]}" -A "$FW_CHAIN_IN" -p icmp -d "$NODE_IP" -j RETURN
	"${mangle[@]}" -A "$FW_CHAIN_IN" -j DROP
	"${mangle[@]}" -A "$FW_CHAIN_FWD" -o "$BRIDGE" -j RETURN
	"${mangle[@]}" -A "$FW_CHAIN_FWD" -j DROP
	"${mangle[@]}" -C INPUT -i "$BRIDGE" -j "$FW_CHAIN_IN" 2>/dev/null ||
		"${mangle[@]}" -I INPUT -i "$BRIDGE" -j "$FW_CHAIN_IN"
	"${mangle[@]}" -C FORWARD -i "$BRIDGE" -j "$FW_CHAIN_FWD" 2>/dev/null ||
		"${mangle[@]}" -I FORWARD -i "$BRIDGE" -j "$FW_CHAIN_FWD"
}

# --- control plane -----------------------------------------------------------------
apiserver_ready() { kc get --raw /readyz >/dev/null 2>&1; }
apiserver_healthy() { apiserver_ready; }
etcd_healthy() { curl -sf "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1; }
controller_manager_healthy() { curl -skf https://127.0.0.1:10257/healthz >/dev/null 2>&1; }
scheduler_healthy() { curl -skf https://127.0.0.1:10259/healthz >/dev/null 2>&1; }

# Each host component has one start_* function, used by up and by restart,
# so a restarted component runs with the flags, log and pid file of up.
start_etcd() {
	mkdir -p "$STATE/etcd"
	chmod 700 "$STATE/etcd"
	start_daemon etcd "$KUBE_BINS/etcd" --name=ddi-local --data-dir="$STATE/etcd" \
		--listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
		--initial-advertise-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
		--initial-cluster="ddi-local=http://127.0.0.1:$((ETCD_PORT + 1))" \
		--quota-backend-bytes=4294967296 --log-level=warn
}

start_apiserver() {
	start_daemon kube-apiserver "$KUBE_BINS/kube-apiserver" \
		--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
		--bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$APISERVER_PORT" \
		--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
		--client-ca-file="$PKI/ca.crt" \
		--kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types=InternalIP \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$PKI/sa.pub" \
		--service-account-signing-key-file="$PKI/sa.key" \
		--authorization-mode=Node,RBAC \
		--enable-admission-plugins=NodeRestriction \
		--allow-privileged=true \
		--profiling=false \
		--event-ttl=1h
}

start_controller_manager() {
	start_daemon kube-controller-manager "$KUBE_BINS/kube-controller-manager" \
		--kubeconfig="$CONF/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$CONF/controller-manager.kubeconfig" \
		--authorization-kubeconfig="$CONF/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10257 \
		--leader-elect=false \
		--controllers='*' \
		--use-service-account-credentials=true \
		--service-account-private-key-file="$PKI/sa.key" \
		--root-ca-file="$PKI/ca.crt" \
		--cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
		--cluster-name=ddi-local \
		--flex-volume-plugin-dir="$STATE/kube-controller-manager/flex" \
		--profiling=false
}

start_scheduler() {
	start_daemon kube-scheduler "$KUBE_BINS/kube-scheduler" \
		--kubeconfig="$CONF/scheduler.kubeconfig" \
		--authentication-kubeconfig="$CONF/scheduler.kubeconfig" \
		--authorization-kubeconfig="$CONF/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10259 \
		--leader-elect=false --profiling=false
}

start_control_plane() {
	start_etcd
	wait_for "etcd" 60 etcd_healthy || die "etcd did not start; see $LOGS/etcd.log"
	start_apiserver
	wait_for "kube-apiserver" 120 apiserver_ready || die "kube-apiserver did not become ready; see $LOGS/kube-apiserver.log"
	log "kube-apiserver: ready at https://$NODE_IP:$APISERVER_PORT"
	start_controller_manager
	start_scheduler
}

# --- node ------------------------------------------------------------------------
# write_file FILE: write stdin to FILE only when it differs (kube-proxy exits
# when its configuration file changes under it).
write_file() {
	local tmp=$1.tmp
	cat >"$tmp"
	if cmp -s "$tmp" "$1"; then
		rm -f "$tmp"
	else
		mv -f "$tmp" "$1"
	fi
}

write_containerd_config() {
	mkdir -p "$CTD_DIR" "$STATE/cni/net.d" "$STATE/cni/ipam"
	write_file "$CTD_DIR/config.toml" <<EOF
version = 2
root = "$CTD_DIR/root"
state = "$CTD_DIR/state"

[grpc]
  address = "$CTD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTD_DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runcwrap clamps negative oom_score_adj (no CAP_SYS_RESOURCE here).
        BinaryName = "$BIN/runcwrap"
        Root = "$CTD_DIR/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CTD_DIR/certs.d"
EOF
	local r
	# The registry's own name too: release.yaml (hack/release.sh) names
	# images as $REGISTRY_ADDR/NAME@sha256:..., over plain HTTP.
	for r in "${MIRRORED[@]}" "$REGISTRY_ADDR"; do
		mkdir -p "$CTD_DIR/certs.d/$r"
		write_file "$CTD_DIR/certs.d/$r/hosts.toml" <<EOF
# $r/NAME:TAG is pulled from the local registry as NAME:TAG.
server = "http://$REGISTRY_ADDR"

[host."http://$REGISTRY_ADDR"]
  capabilities = ["pull", "resolve"]
EOF
	done
	write_file "$STATE/cni/net.d/10-ddi.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ddi-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE/cni/ipam"
      }
    }
  ]
}
EOF
}

write_kubelet_config() {
	mkdir -p "$STATE/kubelet" "$STATE/pod-logs"
	: | write_file "$CONF/resolv.conf"
	write_file "$CONF/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CTD_SOCK
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $CONF/resolv.conf
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
podLogsDir: $STATE/pod-logs
volumePluginDir: $STATE/kubelet/volume-plugins
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
EOF
	write_file "$CONF/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $CONF/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $NODE
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
  minSyncPeriod: 1s
  syncPeriod: 30s
EOF
}

node_ready() {
	[[ $(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# containerd_healthy: containerd answers, and so does its CRI service,
# which refuses calls until it has recovered its pods after a start (one
# gRPC call, runtime.v1.RuntimeService/Version, spoken with curl).
containerd_healthy() {
	ctr --address "$CTD_SOCK" version >/dev/null 2>&1 || return 1
	local trailers
	trailers=$(printf '\0\0\0\0\0' | curl -sS --max-time 5 --unix-socket "$CTD_SOCK" --http2-prior-knowledge \
		-X POST -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- \
		-D - -o /dev/null http://localhost/runtime.v1.RuntimeService/Version 2>/dev/null) || return 1
	grep -qi '^grpc-status: 0' <<<"$trailers"
}
kubelet_healthy() { curl -sf http://127.0.0.1:10248/healthz >/dev/null 2>&1; }
kube_proxy_healthy() { curl -sf http://127.0.0.1:10256/healthz >/dev/null 2>&1; }
clusterdns_healthy() { "$BIN/clusterdns" -probe kubernetes.default.svc.cluster.local. -listen "$NODE_IP:53" >/dev/null 2>&1; }

start_containerd() {
	write_containerd_config
	start_daemon containerd /usr/bin/containerd --config "$CTD_DIR/config.toml"
}

start_kubelet() {
	write_kubelet_config
	start_daemon kubelet "$KUBE_BINS/kubelet" --config="$CONF/kubelet.yaml" \
		--kubeconfig="$CONF/kubelet.kubeconfig" --root-dir="$STATE/kubelet" \
		--hostname-override="$NODE" --node-ip="$NODE_IP" --v=1
}

start_kube_proxy() { start_daemon kube-proxy "$KUBE_BINS/kube-proxy" --config="$CONF/kube-proxy.yaml"; }
start_clusterdns() { start_daemon clusterdns "$BIN/clusterdns" -kubeconfig "$KUBECONFIG_ADMIN" -listen "$NODE_IP:53"; }

start_node() {
	start_registry
	log "registry: pushing images"
	push_images
	start_containerd
	wait_for "containerd" 30 ctr --address "$CTD_SOCK" version || die "containerd did not start; see $LOGS/containerd.log"
	start_kubelet
	start_kube_proxy
	start_clusterdns
	wait_for "node $NODE Ready" 120 node_ready || die "node did not become Ready; see $LOGS/kubelet.log"
	log "node $NODE: Ready"
}

# --- Knative ----------------------------------------------------------------------
# module_dir MODULE@VERSION: the module's folder in the module cache.
module_dir() {
	local dir
	dir=$(cd "$HACK_CLUSTER/knative" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[[ -d $dir ]] || die "module $1 not found in the module cache"
	printf '%s\n' "$dir"
}

# render_knative: copy the manifests Knative would install into
# $STATE/knative, with our image names.
render_knative() {
	local out=$STATE/knative serving networking caching ver
	rm -rf "$out"
	mkdir -p "$out"/{crds,base,rbac,deploy,webhooks}
	serving=$(module_dir "$KNATIVE_MOD_SERVING")
	ver=$(cd "$HACK_CLUSTER/knative" && go list -m -f '{{.Version}}' "$KNATIVE_NETWORKING")
	networking=$(module_dir "$KNATIVE_NETWORKING@$ver")
	ver=$(cd "$HACK_CLUSTER/knative" && go list -m -f '{{.Version}}' "$KNATIVE_CACHING")
	caching=$(module_dir "$KNATIVE_CACHING@$ver")
	local sed_images=() c
	for c in "${KNATIVE_COMPONENTS[@]}"; do
		sed_images+=(-e "s|ko://knative.dev/serving/cmd/$c\$|$IMAGE_REGISTRY/knative/$c:$KNATIVE_VERSION|")
	done
	cp "$serving"/config/core/300-resources/*.yaml "$out/crds/"
	cp "$networking"/config/{ingress,serverlessservice,certificate,domain-claim}.yaml "$out/crds/"
	cp "$caching/config/image.yaml" "$out/crds/"
	cp "$serving/config/core/100-namespace.yaml" "$out/base/"
	cp "$serving"/config/core/configmaps/*.yaml "$out/base/"
	cp "$networking/config/config-network.yaml" "$out/base/"
	cp "$serving"/config/core/200-roles/*.yaml "$serving/config/core/200-serviceaccount.yaml" "$out/rbac/"
	local d
	for d in controller autoscaler activator webhook; do
		sed "${sed_images[@]}" "$serving/config/core/deployments/$d.yaml" >"$out/deploy/$d.yaml"
	done
	cp "$serving"/config/core/webhooks/*.yaml "$out/webhooks/"
	sed -i "${sed_images[@]}" "$out/base/deployment.yaml"
	chmod -R u+w "$out"
}

start_kingress() {
	start_daemon kingress "$BIN/kingress" -kubeconfig "$KUBECONFIG_ADMIN" -class "$INGRESS_CLASS" \
		-public "127.0.0.1:$INGRESS_PORT" -internal "$NODE_IP:80"
}
kingress_healthy() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$INGRESS_PORT" 2>/dev/null; }

knative_ready() {
	local d
	for d in controller autoscaler activator webhook; do
		[[ $(kc -n knative-serving get deploy "$d" -o jsonpath='{.status.availableReplicas}' 2>/dev/null) -ge 1 ]] || return 1
	done
}

install_knative() {
	[[ $WITH_KNATIVE == 1 ]] || { log "Knative: skipped (DDI_CLUSTER_KNATIVE=$WITH_KNATIVE)"; return 0; }
	log "Knative Serving $KNATIVE_VERSION: applying manifests"
	render_knative
	local out=$STATE/knative
	kc apply --server-side --force-conflicts -f "$out/crds" >/dev/null
	kc wait --for condition=established --timeout=60s -f "$out/crds" >/dev/null
	kc apply --server-side --force-conflicts -f "$out/base" >/dev/null
	# What hack/cluster.sh changes in Knative's defaults: local images are
	# never resolved to digests, our KIngress serves routes, example.com is
	# the external domain.
	kc -n knative-serving patch configmap config-deployment --type merge -p \
		"{\"data\":{\"queue-sidecar-image\":\"$IMAGE_REGISTRY/knative/queue:$KNATIVE_VERSION\",\"registries-skipping-tag-resolving\":\"$IMAGE_REGISTRY,kind.local,ko.local,dev.local\"}}" >/dev/null
	kc -n knative-serving patch configmap config-network --type merge -p \
		"{\"data\":{\"ingress-class\":\"$INGRESS_CLASS\"}}" >/dev/null
	kc -n knative-serving patch configmap config-domain --type merge -p \
		'{"data":{"example.com":""}}' >/dev/null
	kc apply --server-side --force-conflicts -f "$out/rbac" >/dev/null
	kc apply --server-side --force-conflicts -f "$out/deploy" >/dev/null
	kc apply --server-side --force-conflicts -f "$out/webhooks" >/dev/null
	start_kingress
	log "Knative: waiting for controller, autoscaler, activator, webhook"
	if ! wait_for "Knative deployments" 300 knative_ready; then
		kc -n knative-serving get pods -o wide >&2 || true
		die "Knative did not become available"
	fi
	log "Knative: ready"
}

# --- verbs -------------------------------------------------------------------------
cmd_build() {
	build_binaries
	"$REPO/hack/registry.sh" build >/dev/null
	build_images
	log "build: done (binaries in $BIN, images in $IMAGES)"
}

cmd_up() {
	need_root
	ensure_packages
	cmd_build
	mkdir -p "$STATE" "$LOGS" "$PIDS" "$CONF"
	net_up
	make_pki
	start_control_plane
	start_node
	install_knative
	log "up: done in $(($(date +%s) - T0))s"
	print_access
	printf '%s\n' "$KUBECONFIG_ADMIN"
}

print_access() {
	cat >&2 <<EOF

  kubeconfig:  export KUBECONFIG=$KUBECONFIG_ADMIN
  API server:  https://$NODE_IP:$APISERVER_PORT
  ingress:     curl -H 'Host: NAME.NAMESPACE.example.com' http://127.0.0.1:$INGRESS_PORT/
               (pods: http://NAME.NAMESPACE.svc.cluster.local -> $NODE_IP:80)
  images:      hack/cluster.sh image $IMAGE_REGISTRY/NAME:TAG ./path/to/main-package-or-binary
  logs:        $LOGS
EOF
}

# kill_pids PID...: TERM, then KILL, the given processes.
kill_pids() {
	[[ $# -gt 0 ]] || return 0
	kill -TERM "$@" 2>/dev/null || true
	sleep 1
	local p
	for p in "$@"; do
		if [[ -d /proc/$p ]]; then kill -KILL "$p" 2>/dev/null || true; fi
	done
}

# shim_pids: containerd shims serving this cluster's containerd.
shim_pids() {
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		[[ $cmd == *containerd-shim* && $cmd == *"$CTD_SOCK"* ]] && printf '%s\n' "${p#/proc/}"
	done
	return 0
}

# kubepods_pids: processes in the kubelet's pod cgroups.
kubepods_pids() {
	local f
	for f in /sys/fs/cgroup/*/kubepods; do
		[[ -d $f ]] || continue
		find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null
	done | sort -u
}

# drop_kube_chains IPTABLES TABLE: remove the rules that jump to KUBE-*
# chains from built-in chains, then the KUBE-* chains (kubelet's canaries and
# whatever kube-proxy --cleanup left).
drop_kube_chains() {
	local ipt=$1 tbl=$2 rule chain
	local rules
	rules=$("$ipt" -w 5 -t "$tbl" -S 2>/dev/null || true)
	while read -r rule; do
		[[ $rule == "-A "* && $rule == *"-j KUBE-"* && $rule != "-A KUBE-"* ]] || continue
		eval "\"\$ipt\" -w 5 -t \"\$tbl\" -D ${rule#-A }" 2>/dev/null || true
	done <<<"$rules"
	local chains
	chains=$(awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}' <<<"$rules")
	while read -r chain; do
		if [[ -n $chain ]]; then "$ipt" -w 5 -t "$tbl" -F "$chain" 2>/dev/null || true; fi
	done <<<"$chains"
	while read -r chain; do
		if [[ -n $chain ]]; then "$ipt" -w 5 -t "$tbl" -X "$chain" 2>/dev/null || true; fi
	done <<<"$chains"
}

cmd_down() {
	need_root
	local t=$T0
	stop_daemons 20 kingress clusterdns kubelet kube-proxy
	if running containerd && [[ -x $BIN/crireset ]]; then
		log "containerd: removing pod sandboxes"
		"$BIN/crireset" -endpoint "$CTD_SOCK" -timeout 90s >&2 || log "crireset reported errors; cleaning up by hand"
	fi
	stop_daemons 20 containerd
	# shellcheck disable=SC2046
	kill_pids $(shim_pids)
	# shellcheck disable=SC2046
	kill_pids $(kubepods_pids)
	stop_daemons 20 kube-scheduler kube-controller-manager kube-apiserver
	stop_daemons 20 etcd
	"$REPO/hack/registry.sh" stop "$REGISTRY_DIR" >/dev/null 2>&1 || true

	# Mounts under the state folder (netns, rootfs overlays, shm, volumes), deepest first.
	local m
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v s="$STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r)

	# Pod cgroups, deepest first.
	local f
	for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods*; do
		[[ -d $f ]] || continue
		find "$f" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done

	# iptables: kube-proxy's rules, kubelet's canaries, our firewall.
	if [[ -x $KUBE_BINS/kube-proxy ]] && command -v iptables >/dev/null; then
		"$KUBE_BINS/kube-proxy" --cleanup >/dev/null 2>&1 || true
	fi
	if command -v iptables >/dev/null; then
		local ipt tbl chain
		for ipt in iptables ip6tables; do
			for tbl in "${KUBE_PROXY_CHAINS_TABLES[@]}"; do
				drop_kube_chains "$ipt" "$tbl"
			done
		done
		while iptables -w 5 -t mangle -D INPUT -i "$BRIDGE" -j "$FW_CHAIN_IN" 2>/dev/null; do :; done
		while iptables -w 5 -t mangle -D FORWARD -i "$BRIDGE" -j "$FW_CHAIN_FWD" 2>/dev/null; do :; done
		for chain in "$FW_CHAIN_IN" "$FW_CHAIN_FWD"; do
			iptables -w 5 -t mangle -F "$chain" 2>/dev/null || true
			iptables -w 5 -t mangle -X "$chain" 2>/dev/null || true
		done
	fi

	# Network: veths left on the bridge, the bridge (its routes go with it).
	if ip link show "$BRIDGE" >/dev/null 2>&1; then
		local l
		for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
			ip link del "$l" 2>/dev/null || true
		done
		ip link del "$BRIDGE"
		log "network: removed bridge $BRIDGE"
	fi
	ip route del "$SERVICE_CIDR" 2>/dev/null || true
	# Connection tracking entries of pod and service traffic.
	if command -v conntrack >/dev/null; then
		local cidr flag
		for cidr in "$POD_CIDR" "$SERVICE_CIDR"; do
			for flag in -s -d; do conntrack -D "$flag" "$cidr" >/dev/null 2>&1 || true; done
		done
	fi

	# Settings and folders that up changed or created.
	local v
	v=$(recalled ip_forward || true)
	[[ -n $v ]] && echo "$v" >/proc/sys/net/ipv4/ip_forward
	v=$(recalled bridge_nf_call_iptables || true)
	[[ -n $v ]] && echo "$v" >/proc/sys/net/bridge/bridge-nf-call-iptables
	local d created=()
	for d in "${HOST_DIRS[@]}"; do
		[[ -n $(recalled "created:$d" || true) ]] && created+=("$d")
	done
	[[ ${#created[@]} -gt 0 ]] && rm -rf "${created[@]}"
	rm -rf "$STATE"
	check_clean "${created[@]}"
	log "down: done in $(($(date +%s) - t))s"
}

# check_clean [DIR...]: warn about anything of the cluster's that is still
# there, DIRs included.
check_clean() {
	local left=()
	[[ -n $(shim_pids) ]] && left+=("containerd shims: $(shim_pids | tr '\n' ' ')")
	[[ -n $(kubepods_pids) ]] && left+=("pod processes: $(kubepods_pids | tr '\n' ' ')")
	ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("bridge $BRIDGE")
	grep -q " $STATE/" /proc/self/mountinfo && left+=("mounts under $STATE")
	ls -d /sys/fs/cgroup/*/kubepods >/dev/null 2>&1 && left+=("kubepods cgroups")
	if command -v iptables-save >/dev/null; then
		iptables-save 2>/dev/null | grep -qE '^:(KUBE|DDI-CLUSTER)-' && left+=("iptables chains")
	fi
	local d
	for d in "$STATE" "$@"; do
		[[ -e $d ]] && left+=("$d")
	done
	if [[ ${#left[@]} -gt 0 ]]; then
		log "warning: left behind: ${left[*]}"
		return 1
	fi
	log "down: nothing left (processes, mounts, links, iptables, folders)"
}

# status_line NAME CHECK...: one component's line.
status_line() {
	local name=$1
	shift
	local state=stopped pid=-
	if running "$name"; then
		pid=$(<"$PIDS/$name.pid")
		state=running
		if [[ $# -gt 0 ]]; then
			"$@" >/dev/null 2>&1 && state="running, healthy" || state="running, NOT healthy"
		fi
	fi
	printf '  %-24s %-8s %s\n' "$name" "$pid" "$state"
}

rss_of() {
	local pid=$1
	awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0
}

cmd_status() {
	if [[ ! -d $STATE/pids ]]; then
		echo "cluster: down (no state in $STATE)"
		return 0
	fi
	echo "components:"
	local n
	for n in "${COMPONENTS[@]}"; do
		status_line "$n" "$(component_fn "$n" healthy)"
	done
	local total=0 pid
	for n in "${COMPONENTS[@]}"; do
		running "$n" || continue
		pid=$(<"$PIDS/$n.pid")
		total=$((total + $(rss_of "$pid")))
	done
	local pods=0
	for pid in $(kubepods_pids) $(shim_pids); do pods=$((pods + $(rss_of "$pid"))); done
	printf '  memory (RSS): host components %d MiB, pods and shims %d MiB\n' $((total / 1024)) $((pods / 1024))
	echo
	if apiserver_ready; then
		echo "node:"
		kc get nodes -o wide 2>&1 | sed 's/^/  /'
		echo
		echo "pods:"
		kc get pods -A -o wide 2>&1 | sed 's/^/  /'
		if kc get crd services.serving.knative.dev >/dev/null 2>&1; then
			echo
			echo "Knative Services:"
			kc get ksvc -A 2>&1 | sed 's/^/  /'
		fi
	fi
	echo
	echo "kubeconfig: $KUBECONFIG_ADMIN"
	echo "reach a Knative Service through the ingress:"
	echo "  curl -H 'Host: hello.default.example.com' http://127.0.0.1:$INGRESS_PORT/"
	echo "from pods: http://NAME.NAMESPACE.svc.cluster.local (KIngress on $NODE_IP:80)"
}

cmd_image() {
	[[ $# -ge 2 ]] || die "usage: hack/cluster.sh image REF SRC [IMGPACK FLAGS...]"
	local ref=$1 src=$2
	shift 2
	[[ $ref == *:* ]] || die "image reference $ref needs a tag (NAME:TAG; never latest)"
	build_go "$HACK_CLUSTER/imgpack" "." imgpack .
	if [[ -d $src ]]; then
		local name out
		name=$(basename "$(cd "$src" && pwd)")
		out=$CCACHE/image-bin/$(printf '%s' "$ref" | tr '/:@' '___')/$name
		mkdir -p "$(dirname "$out")"
		log "image: go build $src"
		(cd "$src" && go build -p "$BUILD_P" -trimpath -ldflags "-s -w" -o "$out" .)
		src=$out
	fi
	[[ -f $src && -x $src ]] || die "$src is neither an executable file nor a folder"
	local tar
	tar=$(pack_image "$ref" "$src" "$@")
	if registry_running; then
		push_image "$tar"
		log "image: pushed $ref to the cluster's registry"
	else
		log "image: cluster not up; $ref will be pushed by the next up"
	fi
	printf '%s\n' "$tar"
}

# The host components, in the order up starts them. Each has a start_X
# and an X_healthy function, X being NAME with dashes as underscores and,
# for the control plane's three, without kube- (start_apiserver,
# apiserver_healthy).
readonly COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy clusterdns kingress)

# component_fn NAME start|healthy: the function that starts NAME, or tells
# whether it is healthy.
component_fn() {
	local base
	case $1 in
	kube-apiserver | kube-controller-manager | kube-scheduler) base=${1#kube-} ;;
	*) base=$1 ;;
	esac
	base=${base//-/_}
	case $2 in
	start) printf 'start_%s' "$base" ;;
	healthy) printf '%s_healthy' "$base" ;;
	esac
}

# cmd_restart NAME: stop one running host component (TERM, KILL after 20
# s) and start it again as up does, then wait until it is healthy; prints
# the milliseconds from the stop to healthy on stdout.
cmd_restart() {
	need_root
	local name=${1:-} c
	for c in "${COMPONENTS[@]}"; do [[ $c == "$name" ]] && break; done
	[[ -n $name && $c == "$name" ]] || die "usage: hack/cluster.sh restart COMPONENT, one of: ${COMPONENTS[*]}"
	running "$name" || die "$name is not running (hack/cluster.sh up starts it)"
	local old t stopped healthy
	old=$(<"$PIDS/$name.pid")
	t=$(date +%s%N)
	stop_daemons 20 "$name"
	stopped=$(elapsed_ms "$t")
	"$(component_fn "$name" start)"
	healthy=$(component_fn "$name" healthy)
	wait_for "$name to be healthy again" 180 "$healthy" || die "$name did not become healthy again; see $LOGS/$name.log"
	local ms
	ms=$(elapsed_ms "$t")
	log "restart: $name (pid $old -> $(<"$PIDS/$name.pid")) stopped in $stopped ms, healthy again $ms ms after the stop began"
	printf '%s\n' "$ms"
}

# elapsed_ms START_NS: milliseconds since START_NS (date +%s%N).
elapsed_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# pod_phase NS NAME: the pod's phase.
pod_phase() { kc -n "$1" get pod "$2" -o jsonpath='{.status.phase}' 2>/dev/null; }
pod_succeeded() { [[ $(pod_phase "$1" "$2") == Succeeded ]]; }
# no_pods NS SELECTOR: whether no pod (running or terminating) matches.
no_pods() { [[ -z $(kc -n "$1" get pods -l "$2" -o name 2>/dev/null) ]]; }

cmd_smoke() {
	apiserver_ready || die "the cluster is not up (hack/cluster.sh up)"
	local ns=ddi-smoke host t body
	host=hello.$ns.example.com
	kc delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
	kc create namespace "$ns" >/dev/null
	log "smoke: creating Knative Service $ns/hello ($HELLO_IMAGE)"
	t=$(date +%s%N)
	kc apply -f - >/dev/null 2>&1 <<EOF
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: $ns
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/window: "6s"
    spec:
      containers:
      - image: $HELLO_IMAGE
        env:
        - {name: TARGET, value: smoke}
EOF
	kc -n "$ns" wait ksvc/hello --for condition=Ready --timeout=120s >/dev/null ||
		die "Knative Service did not become Ready: $(kc -n "$ns" get ksvc hello -o jsonpath='{.status.conditions}')"
	log "smoke: Ready in $(elapsed_ms "$t") ms"

	body=$(curl -sf -H "Host: $host" "http://127.0.0.1:$INGRESS_PORT/") || die "curl through the KIngress failed"
	[[ $body == "hello smoke"* ]] || die "unexpected answer through the KIngress: $body"
	log "smoke: curl -H 'Host: $host' http://127.0.0.1:$INGRESS_PORT/ -> $body"

	kc -n "$ns" run fetch --image="$FETCH_IMAGE" --image-pull-policy=Never --restart=Never -- \
		"http://hello.$ns.svc.cluster.local/" "http://hello.$ns/" >/dev/null
	wait_for "in-cluster fetch" 60 pod_succeeded "$ns" fetch ||
		die "in-cluster request failed: $(kc -n "$ns" logs fetch 2>&1)"
	log "smoke: from a pod: $(kc -n "$ns" logs fetch | head -1)"

	if [[ ${DDI_SMOKE_ZERO:-1} == 1 ]]; then
		log "smoke: waiting for scale to zero (about a minute)"
		t=$(date +%s%N)
		wait_for "scale to zero" 240 no_pods "$ns" serving.knative.dev/service=hello ||
			die "hello did not scale to zero"
		log "smoke: scaled to zero after $(elapsed_ms "$t") ms"
		t=$(date +%s%N)
		body=$(curl -sf -H "Host: $host" "http://127.0.0.1:$INGRESS_PORT/") || die "wake-up request failed"
		log "smoke: woke up through the activator in $(elapsed_ms "$t") ms -> $body"
	fi
	kc delete namespace "$ns" --wait=false >/dev/null
	log "smoke: passed"
}

main() {
	local verb=${1:-}
	[[ $# -gt 0 ]] && shift
	case "$verb" in
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	build) cmd_build ;;
	image) cmd_image "$@" ;;
	smoke) cmd_smoke ;;
	restart) cmd_restart "$@" ;;
	kubeconfig) printf '%s\n' "$KUBECONFIG_ADMIN" ;;
	env)
		printf 'export KUBECONFIG=%s\n' "$KUBECONFIG_ADMIN"
		printf 'export DDI_CLUSTER_INGRESS=http://127.0.0.1:%s\n' "$INGRESS_PORT"
		printf 'export DDI_CLUSTER_NODE_IP=%s\n' "$NODE_IP"
		;;
	-h | --help | help) usage ;;
	*) usage; exit 2 ;;
	esac
}

main "$@"
