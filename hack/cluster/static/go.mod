// Tools module for the local cluster (hack/cluster.sh): small static programs
// with no dependencies (the pause image's binary, the runc wrapper, a hello
// world function). Kept apart from the main ddi.dev/ddi go.mod on purpose.
module ddi.dev/ddi/hack/cluster/static

go 1.26.0
