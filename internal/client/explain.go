package client

import (
	"context"
	"net/http"

	"ddi.dev/ddi/internal/registry"
)

// Explanation is the answer of POST /v1/explain: every candidate provider
// with the rule that admitted or rejected it, at a store revision.
type Explanation struct {
	registry.Explanation
	Revision int64 `json:"revision"`
}

// Explain asks the control plane why dependency ("alias=selector")
// resolves as it does for consumer. An unresolved dependency is an
// answer too (Explanation.Unresolved says why), not an error.
func (c *Client) Explain(ctx context.Context, consumer registry.Consumer, dependency string) (Explanation, error) {
	body := struct {
		Consumer   registry.Consumer `json:"consumer"`
		Dependency string            `json:"dependency"`
	}{consumer, dependency}
	var out Explanation
	_, err := c.do(ctx, http.MethodPost, "/v1/explain", body, &out)
	return out, err
}

// BuildInfo is the answer of GET /v1/version: the control plane's
// version, VCS commit and Go version.
type BuildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
}

// Version asks the control plane for its version and commit.
func (c *Client) Version(ctx context.Context) (BuildInfo, error) {
	var out BuildInfo
	_, err := c.do(ctx, http.MethodGet, "/v1/version", nil, &out)
	return out, err
}
