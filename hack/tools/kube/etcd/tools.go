//go:build tools

// Package tools pins etcd (main package at the module root of
// go.etcd.io/etcd/server/v3), built by hack/kube-bins.sh.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
