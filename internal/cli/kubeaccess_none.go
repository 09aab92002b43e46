//go:build nokube

package cli

import (
	"context"
	"errors"
	"net/http"
)

type kubeConn struct {
	baseURL string
	http    *http.Client
	via     string
	close   func()
}

// connectKube is not available in a build with -tags nokube (the sidecar
// image): it has no Kubernetes client libraries.
func connectKube(context.Context, string, string, string, string) (*kubeConn, error) {
	return nil, errors.New("this ddi is built without Kubernetes support (-tags nokube): use a full ddi build for --kubeconfig and --context")
}
