#!/usr/bin/env bash
# Knative Serving's own conformance tests on the local cluster of
# hack/cluster.sh, without ddi and with ddi injecting every pod.
#
# The tests are knative.dev/serving v0.42.2 (the version the cluster runs),
# packages test/conformance/api/v1 and test/conformance/runtime, compiled
# with `go test -c -tags e2e` from the module of hack/cluster/knative (which
# requires knative.dev/serving v0.42.2; the root go.mod never sees Knative).
# Their images (test/test_images of the same module) are built here with
# CGO_ENABLED=0 and pushed with `hack/cluster.sh image` as
# dev.local/knative-test/NAME:v0.42.2, the name the tests generate from
# --dockerrepo=dev.local/knative-test --tag=v0.42.2. Not ddi.local: the
# tests want every revision's image digest unless the registry is kind.local,
# ko.local or dev.local (images side-loaded as on kind), and Knative here
# resolves no digests (registries-skipping-tag-resolving); containerd pulls
# dev.local/... from the cluster's registry like ddi.local/....
#
# Each run uses its own namespace: serving-tests (plain) and
# serving-tests-ddi (labelled ddi.dev/inject=enabled, so ddi's webhook
# injects every pod of it). Requests reach the routes through the local
# KIngress on 127.0.0.1:31080 with the route's Host, as Knative's spoofing
# client does with --ingressendpoint. A watch on each namespace records
# every pod's containers; the ddi run fails if a pod lacked the sidecar.
# While it runs, config-deployment's progress-deadline is 120s, as in
# Knative's own test configuration.
#
# Usage: hack/knative-conformance.sh [VERB]   (as root, cluster up)
#   all        (default) build, push the images, install ddi if it is not
#              installed (hack/e2e.sh install), run without ddi, run with
#              ddi, print the report; exit 1 if a run could not be made or
#              a pod of the ddi run had no sidecar (test failures are in
#              the report, not in the exit status)
#   build      only build the test images' binaries and the two test
#              binaries (no cluster needed)
#   run MODE   push the images and run the tests in one mode: plain or ddi
#   report     print the comparison of the last plain and ddi runs
#              (Markdown, as in docs/platforms.md)
#
# Environment:
#   DDI_KC_PARALLEL    go test -parallel of each package [4]
#   DDI_KC_TIMEOUT     go test -timeout of each package [30m]
#   DDI_KC_RUN         go test -run of both packages [all tests]
#   DDI_BUILD_P        go build -p [2]
# and those of hack/cluster.sh (DDI_CACHE, DDI_CLUSTER_INGRESS_PORT, ...).
# Results: $DDI_CACHE/knative-conformance/results/MODE/ (go test -json per
# package, results.tsv, pods.txt) and results/report.md.
set -euo pipefail

readonly KNATIVE_VERSION=v0.42.2
readonly SERVING=knative.dev/serving
readonly TEST_REPO=dev.local/knative-test
readonly INGRESS_CLASS=kingress.ddi.dev
readonly PACKAGES=(test/conformance/api/v1 test/conformance/runtime)
# The main packages under test/test_images; ko names each image after the
# last element of its import path.
readonly IMAGES=(autoscale failing grpc-ping hellohttp2 hellovolume helloworld httpproxy
	multicontainer/servingcontainer multicontainer/sidecarcontainer pizzaplanetv1 pizzaplanetv2
	readiness revisionfailure runtime singlethreaded slowstart timeout volumes wsserver)

# shellcheck source=hack/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
readonly MODULE=$REPO/hack/cluster/knative
readonly OUT=$DDI_CACHE/knative-conformance
readonly RESULTS=$OUT/results
readonly BUILD_P=${DDI_BUILD_P:-2}
readonly PARALLEL=${DDI_KC_PARALLEL:-4}
readonly TIMEOUT=${DDI_KC_TIMEOUT:-30m}
readonly INGRESS_PORT=${DDI_CLUSTER_INGRESS_PORT:-31080}
readonly GATEWAY_NS=knative-conformance-ingress
readonly GATEWAY=kingress

log() { printf '[knative-conformance %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

kc() { kubectl --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

namespace_of() {
	case $1 in
	plain) echo serving-tests ;;
	ddi) echo serving-tests-ddi ;;
	*) die "unknown mode $1 (plain or ddi)" ;;
	esac
}

# build: the test images' binaries and the test binaries, all from the
# module of hack/cluster/knative (-mod=readonly: nothing in it changes).
cmd_build() {
	local t=$SECONDS pkgs=() i p
	for i in "${IMAGES[@]}"; do pkgs+=("$SERVING/test/test_images/$i"); done
	mkdir -p "$OUT/images" "$OUT/bin"
	log "building ${#IMAGES[@]} test images of $SERVING@$KNATIVE_VERSION"
	(cd "$MODULE" && CGO_ENABLED=0 go build -mod=readonly -p "$BUILD_P" -trimpath -ldflags '-s -w' \
		-o "$OUT/images/" "${pkgs[@]}")
	for p in "${PACKAGES[@]}"; do
		log "compiling $SERVING/$p (go test -c -tags e2e)"
		(cd "$MODULE" && go test -mod=readonly -p "$BUILD_P" -c -tags e2e \
			-o "$OUT/bin/$(basename "$p").test" "$SERVING/$p")
	done
	log "built in $((SECONDS - t)) s"
}

# push_images: pack each binary as dev.local/knative-test/NAME:TAG and push
# it to the cluster's registry. The tarballs go once pushed: every
# `hack/cluster.sh up` pushes all of .cache/cluster/images (220 MB of them),
# and every run of this script pushes its images itself.
push_images() {
	local i ref err
	for i in "${IMAGES[@]}"; do
		ref=$TEST_REPO/$(basename "$i"):$KNATIVE_VERSION
		[[ -x $OUT/images/$(basename "$i") ]] || die "$OUT/images/$(basename "$i") missing: run the build verb"
		err=$(hack/cluster.sh image "$ref" "$OUT/images/$(basename "$i")" 2>&1 >"$OUT/image.tar.path") ||
			die "hack/cluster.sh image $ref failed: $err"
		[[ $err == *"pushed $ref"* ]] || die "$ref was not pushed (is the cluster up?): $err"
		rm -f "$(<"$OUT/image.tar.path")" "$(<"$OUT/image.tar.path").stamp"
	done
	log "pushed ${#IMAGES[@]} images as $TEST_REPO/NAME:$KNATIVE_VERSION"
}

# gateway: Knative's spoofing client reads a Service to learn the ingress
# (GATEWAY_OVERRIDE in GATEWAY_NAMESPACE_OVERRIDE) even with
# --ingressendpoint, and maps the route's port 80 to that Service's
# nodePort: this Service says "port 80 is 31080". It needs an endpoint: for
# a NodePort without endpoints kube-proxy REJECTs the port on every local
# address, 127.0.0.1 included, which would shadow the KIngress. Its endpoint
# is the KIngress's listener on the node IP, port 80; kube-proxy's NodePorts
# live on the node IP only, so 127.0.0.1:31080 stays the KIngress's.
gateway() {
	local node_ip
	node_ip=$(hack/cluster.sh env | sed -n 's/^export DDI_CLUSTER_NODE_IP=//p')
	[[ -n $node_ip ]] || die "hack/cluster.sh env printed no node IP"
	kc get namespace "$GATEWAY_NS" >/dev/null 2>&1 || kc create namespace "$GATEWAY_NS" >/dev/null
	kc apply -f - >/dev/null <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $GATEWAY
  namespace: $GATEWAY_NS
  labels:
    kubernetes.io/service-name: $GATEWAY
addressType: IPv4
endpoints:
- addresses: ["$node_ip"]
  conditions: {ready: true}
ports:
- name: http
  port: 80
  protocol: TCP
---
apiVersion: v1
kind: Service
metadata:
  name: $GATEWAY
  namespace: $GATEWAY_NS
spec:
  type: NodePort
  ports:
  - name: http
    port: 80
    nodePort: $INGRESS_PORT
EOF
	local i
	for i in $(seq 1 20); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Host: ingress.check.invalid' "http://127.0.0.1:$INGRESS_PORT/") == 404 ]] && return 0
		sleep 0.5
	done
	die "the KIngress does not answer on 127.0.0.1:$INGRESS_PORT"
}

# test_namespace MODE: the namespace with what Knative's
# test/config/test-resources.yaml puts in serving-tests, and no Knative
# Service or pod left by an earlier run.
test_namespace() {
	local mode=$1 ns i
	ns=$(namespace_of "$mode")
	kc get namespace "$ns" >/dev/null 2>&1 || kc create namespace "$ns" >/dev/null
	if [[ $mode == ddi ]]; then
		kc label --overwrite namespace "$ns" ddi.dev/inject=enabled >/dev/null
	else
		kc label namespace "$ns" ddi.dev/inject- >/dev/null 2>&1 || true
	fi
	kc -n "$ns" delete ksvc,configuration,route --all --wait=false >/dev/null 2>&1 || true
	for i in $(seq 1 240); do
		[[ -z $(kc -n "$ns" get ksvc,pods -o name 2>/dev/null) ]] && break
		((i % 20 == 1)) && log "waiting for the pods of an earlier run in $ns to go"
		sleep 1
	done
	[[ -z $(kc -n "$ns" get pods -o name 2>/dev/null) ]] || die "pods of an earlier run are still in $ns"
	kc -n "$ns" delete configmap/conformance-test-configmap secret/conformance-test-secret --ignore-not-found >/dev/null
	kc -n "$ns" create configmap conformance-test-configmap --from-literal=testKey=testValue >/dev/null
	kc -n "$ns" create secret generic conformance-test-secret --from-literal=testKey=testValue >/dev/null
	# The service account controller adds "default"; pods cannot be made before.
	for i in $(seq 1 60); do
		kc -n "$ns" get serviceaccount default >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	die "namespace $ns has no default service account"
}

# progress_deadline: Knative's own test configuration
# (test/config/ytt/core/overlay-config-deployment.yaml) sets
# config-deployment's progress-deadline to 120s; with the default 600s,
# TestContainerExitingMsg (its revision is marked failed when the
# deployment's progress deadline passes) races the tests' 10 min poll. The
# previous value comes back when the script ends.
progress_deadline() {
	PREV_DEADLINE=$(kc -n knative-serving get configmap config-deployment -o jsonpath='{.data.progress-deadline}')
	[[ $PREV_DEADLINE == 120s ]] && return 0
	kc -n knative-serving patch configmap config-deployment --type merge \
		-p '{"data":{"progress-deadline":"120s"}}' >/dev/null
	trap restore_progress_deadline EXIT
	log "config-deployment: progress-deadline 120s (was ${PREV_DEADLINE:-unset}) until the end of this script"
}

restore_progress_deadline() {
	local patch=(--type json -p '[{"op":"remove","path":"/data/progress-deadline"}]')
	[[ -n $PREV_DEADLINE ]] && patch=(--type merge -p "{\"data\":{\"progress-deadline\":\"$PREV_DEADLINE\"}}")
	kc -n knative-serving patch configmap config-deployment "${patch[@]}" >/dev/null ||
		log "warning: could not restore config-deployment's progress-deadline"
}

ddi_installed() {
	kc get mutatingwebhookconfiguration ddi-sidecar-injector >/dev/null 2>&1 &&
		[[ $(kc -n ddi-system get deploy ddi-controller -o jsonpath='{.status.availableReplicas}' 2>/dev/null) -ge 1 ]]
}

# run_package MODE PKG: one test binary under test2json, as go test -json.
run_package() {
	local mode=$1 pkg=$2 ns name dir run=()
	ns=$(namespace_of "$mode")
	name=$(basename "$pkg")
	dir=$RESULTS/$mode
	[[ -n ${DDI_KC_RUN:-} ]] && run=("-test.run=$DDI_KC_RUN")
	(cd "$dir" && GATEWAY_OVERRIDE=$GATEWAY GATEWAY_NAMESPACE_OVERRIDE=$GATEWAY_NS SYSTEM_NAMESPACE=knative-serving \
		go tool test2json -t -p "$SERVING/$pkg" "$OUT/bin/$name.test" \
		-test.v=test2json -test.count=1 -test.timeout="$TIMEOUT" -test.parallel="$PARALLEL" "${run[@]}" \
		--kubeconfig="$KUBECONFIG_ADMIN" \
		--ingressendpoint=127.0.0.1 \
		--dockerrepo="$TEST_REPO" --tag="$KNATIVE_VERSION" \
		--test-namespace="$ns" \
		--ingress-class="$INGRESS_CLASS" \
		--resolvabledomain=false \
		--enable-alpha --enable-beta \
		>"$dir/$name.json" 2>"$dir/$name.stderr")
}

# results_tsv FILE...: package, test, action, seconds and, for a skipped
# test, its last line logged from a test file (the t.Skip message).
results_tsv() {
	jq -rs '
	  reduce (.[] | select(.Test != null)) as $e ({};
	    ($e.Package + " " + $e.Test) as $k
	    | if $e.Action == "output" then
	        if ($e.Output | test("^\\s+[A-Za-z0-9_]+\\.go:[0-9]+: ")) and ($e.Output | test("logger\\.go") | not)
	        then .[$k].last = ($e.Output | sub("^\\s+"; "") | rtrimstr("\n")) else . end
	      elif ($e.Action == "pass" or $e.Action == "fail" or $e.Action == "skip")
	      then .[$k] += {pkg: $e.Package, test: $e.Test, action: $e.Action, elapsed: $e.Elapsed}
	      else . end)
	  | to_entries[] | .value | select(.action != null)
	  | [(.pkg | sub("^knative.dev/serving/test/conformance/"; "")), .test, .action, (.elapsed | tostring),
	     (if .action == "skip" then (.last // "" | sub("^[A-Za-z0-9_]+\\.go:[0-9]+: "; "")) else "" end)]
	  | @tsv' "$@" | LC_ALL=C sort -t$'\t' -k1,1 -k2,2
}

cmd_run() {
	local mode=$1 ns dir t=$SECONDS p
	ns=$(namespace_of "$mode")
	dir=$RESULTS/$mode
	for p in "${PACKAGES[@]}"; do
		[[ -x $OUT/bin/$(basename "$p").test ]] || die "test binary for $p missing: run the build verb"
	done
	push_images
	gateway
	if [[ $mode == ddi ]] && ! ddi_installed; then
		die "ddi is not installed: run hack/e2e.sh install first"
	fi
	test_namespace "$mode"
	rm -rf "$dir"
	mkdir -p "$dir"
	# Every pod the tests create: name;init containers;containers.
	kc -n "$ns" get pods --watch -o jsonpath='{.metadata.name}{";"}{.spec.initContainers[*].name}{";"}{.spec.containers[*].name}{"\n"}' \
		>"$dir/pods.watch" 2>/dev/null &
	local watch=$!
	log "$mode: running ${PACKAGES[*]} in namespace $ns (-parallel $PARALLEL, both packages at once)"
	local pids=() rc=0
	for p in "${PACKAGES[@]}"; do
		run_package "$mode" "$p" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	kill "$watch" 2>/dev/null || true
	wait "$watch" 2>/dev/null || true
	local secs=$((SECONDS - t))
	results_tsv "$dir"/*.json >"$dir/results.tsv"
	pods_summary "$dir/pods.watch" >"$dir/pods.txt"
	printf '%s\n' "$secs" >"$dir/seconds"
	log "$mode: done in $secs s (go test status $rc); $(cut -f3 "$dir/results.tsv" | sort | uniq -c | tr -s ' \n' ' ')"
	log "$mode: $(cat "$dir/pods.txt")"
	if [[ $mode == ddi ]]; then
		local n s
		read -r n _ s _ <"$dir/pods.txt"
		[[ $n -gt 0 && $n -eq $s ]] || { log "error: not every pod of $ns had the sidecar ($dir/pods.watch)"; return 1; }
	fi
}

# pods_summary FILE: how many pods the watch saw, and how many had ddi's
# sidecar, as a container (ordered mode) or an init container (native).
pods_summary() {
	awk -F';' 'NF >= 3 {seen[$1] = 1; n = split($2, a, " "); for (i = 1; i <= n; i++) if (a[i] == "ddi-sidecar") init[$1] = 1
		n = split($3, a, " "); for (i = 1; i <= n; i++) if (a[i] == "ddi-sidecar") ctr[$1] = 1}
		END {for (p in seen) {t++; if (p in init) ni++; if (p in ctr) nc++}
			printf "%d pods, %d with the ddi-sidecar container (%d as a container, %d as an init container)\n", t, ni + nc, nc, ni}' "$1"
}

# count DIR [PKG]: "P passed, F failed, S skipped" over top-level tests.
count() {
	awk -F'\t' -v pkg="${2:-}" '$2 !~ /\// && (pkg == "" || $1 == pkg) {c[$3]++}
		END {printf "%d passed, %d failed, %d skipped", c["pass"], c["fail"], c["skip"]}' "$1/results.tsv"
}

# cmd_report: one row per top-level test, each cell the test's result
# with its subtests' (e.g. "pass (3 pass, 1 skip)"), then every skip with
# its message, then the totals of each run.
cmd_report() {
	local m
	for m in plain ddi; do [[ -f $RESULTS/$m/results.tsv ]] || die "no results in $RESULTS/$m: run both modes first"; done
	printf '| package | test | without ddi | with ddi |\n| --- | --- | --- | --- |\n'
	awk -F'\t' '
		FNR == 1 {f++}
		{top = $2; sub(/\/.*/, "", top); k = $1 SUBSEP top; keys[k] = 1
		 if ($2 == top) st[f, k] = $3; else {n[f, k, $3]++; subs[f, k] = 1}}
		END {for (k in keys) {split(k, a, SUBSEP); line = a[1] "\t" a[2]
			for (i = 1; i <= 2; i++) {c = (i, k) in st ? st[i, k] : "-"
				if ((i, k) in subs) {d = ""
					if (n[i, k, "pass"]) d = d ", " n[i, k, "pass"] " pass"
					if (n[i, k, "fail"]) d = d ", " n[i, k, "fail"] " fail"
					if (n[i, k, "skip"]) d = d ", " n[i, k, "skip"] " skip"
					c = c " (" substr(d, 3) ")"}
				line = line "\t" c}
			print line}}' "$RESULTS/plain/results.tsv" "$RESULTS/ddi/results.tsv" |
		LC_ALL=C sort -t$'\t' -k1,1 -k2,2 | awk -F'\t' '{print "| " $1 " | " $2 " | " $3 " | " $4 " |"}'
	printf '\nSkipped (test: message; in which runs):\n\n'
	awk -F'\t' 'FNR == 1 {f++} $3 == "skip" {k = $1 " " $2 ": " ($5 == "" ? "(no message)" : $5); w[k] = w[k] (w[k] == "" ? "" : ", ") (f == 1 ? "without ddi" : "with ddi")}
		END {for (k in w) print "- " k "; " w[k]}' "$RESULTS/plain/results.tsv" "$RESULTS/ddi/results.tsv" | LC_ALL=C sort
	printf '\nTotals (top-level tests; time of the run; pods seen):\n\n'
	for m in plain ddi; do
		printf -- '- %s: api/v1 %s; runtime %s; %s s; %s\n' "$m" \
			"$(count "$RESULTS/$m" api/v1)" "$(count "$RESULTS/$m" runtime)" \
			"$(cat "$RESULTS/$m/seconds")" "$(cat "$RESULTS/$m/pods.txt")"
	done
}

cmd_all() {
	local t=$SECONDS rc=0
	cmd_build
	if ! ddi_installed; then
		log "ddi is not installed: hack/e2e.sh install"
		hack/e2e.sh install
	fi
	cmd_run plain || rc=1
	cmd_run ddi || rc=1
	cmd_report | tee "$RESULTS/report.md"
	log "all done in $((SECONDS - t)) s"
	return "$rc"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

main() {
	local verb=${1:-all}
	[[ $# -gt 0 ]] && shift
	case $verb in
	build) cmd_build; return ;;
	-h | --help | help) usage; return ;;
	report) cmd_report; return ;;
	all | run) ;;
	*) usage >&2; exit 2 ;;
	esac
	command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
	KUBECONFIG_ADMIN=$(hack/cluster.sh kubeconfig)
	[[ -f $KUBECONFIG_ADMIN ]] || die "no kubeconfig at $KUBECONFIG_ADMIN: bring the cluster up (sudo hack/cluster.sh up)"
	readonly KUBECONFIG_ADMIN
	progress_deadline
	case $verb in
	all) cmd_all ;;
	run) [[ $# -eq 1 ]] || die "usage: hack/knative-conformance.sh run plain|ddi"; cmd_run "$1" ;;
	esac
}

main "$@"
