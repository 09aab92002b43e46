package controlplane_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/registry"
)

// racingStore is a real store whose first Create of a name loses a race:
// a declared provider of that name appears just before it.
type racingStore struct {
	registry.Store
	once sync.Once
}

func (s *racingStore) Create(ctx context.Context, p registry.Provider) (registry.Provider, error) {
	var err error
	s.once.Do(func() {
		declared := registry.Provider{Namespace: p.Namespace, Name: p.Name, Type: "http",
			Endpoints: []registry.Endpoint{{URL: "http://127.0.0.1:9001", Ready: true}}}
		_, err = s.Store.Create(ctx, declared)
	})
	if err != nil {
		return registry.Provider{}, err
	}
	return s.Store.Create(ctx, p)
}

// TestRegistrationRetryDoesNotReplaceAnotherOwner: a run-time
// registration that finds, on its create-or-replace retry, a provider it
// does not own (one declared meanwhile) must not replace it.
func TestRegistrationRetryDoesNotReplaceAnotherOwner(t *testing.T) {
	var b registry.Store
	e := newEnvWith(t, func(o *controlplane.Options) {
		b = o.Store
		o.Store = &racingStore{Store: b}
	})
	hs := e.http

	body := `{"type":"http","version":"9.0.0","owner":"sidecar:default/evil@host","lease":{"ttl":"30s"},"endpoints":[{"url":"http://127.0.0.1:6666","ready":true}]}`
	req, _ := http.NewRequest(http.MethodPut, hs.URL+"/v1/providers/default/greeter", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("PUT over a provider declared meanwhile = %d, want 409", resp.StatusCode)
	}
	got, err := b.Get(t.Context(), "default", "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner != "" || got.Version == "9.0.0" || len(got.Endpoints) != 1 || got.Endpoints[0].URL != "http://127.0.0.1:9001" {
		t.Errorf("stored greeter = %+v, want the declaration untouched", got)
	}
	if errors.Is(err, registry.ErrNotFound) {
		t.Error("the declaration is gone")
	}
}
