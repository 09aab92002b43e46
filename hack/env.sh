# shellcheck shell=bash
# Sourced by the hack/ scripts that drive the local cluster: REPO (and the
# working directory), DDI_CACHE, GOTOOLCHAIN=local, and a PATH that finds
# go and kubectl where sudo's secure_path hides them (/usr/local/go/bin,
# and the kubectl hack/kube-bins.sh linked or built into the cache).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
cd "$REPO" || exit
DDI_CACHE=${DDI_CACHE:-$REPO/.cache}
export DDI_CACHE GOTOOLCHAIN=local
for d in /usr/local/go/bin "$DDI_CACHE/kube/v1.37.2"; do
	[[ -d $d && ":$PATH:" != *":$d:"* ]] && PATH=$PATH:$d
done
export PATH
