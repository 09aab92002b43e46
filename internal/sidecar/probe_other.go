//go:build !unix

package sidecar

import "net"

// probeClosed cannot peek on this system: a connection closed by its
// peer is found when it is used (and a safe request is sent again).
func probeClosed(net.Conn) bool { return false }
