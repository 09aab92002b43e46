package controlplane_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/httpapi"
)

func registration(owner string) string {
	return `{"type":"http","endpoints":[{"url":"http://127.0.0.1:9001","ready":true}],"lease":{"ttl":"1m"},"owner":"` + owner + `"}`
}

// TestRegistrationCapPerOwner proves that the control plane, not only the
// sidecar, bounds the run-time registrations of one owner (a pod), also
// when a caller skips its sidecar and sends them all at once.
func TestRegistrationCapPerOwner(t *testing.T) {
	const owner = "pod:team/fn-1/uid-1"
	max := controlplane.MaxRegistrationsPerOwner

	t.Run("sequential", func(t *testing.T) {
		e := newEnv(t)
		for i := range max {
			if code, body := e.do(t, "PUT", fmt.Sprintf("/v1/providers/team/r%d", i), registration(owner)); code != http.StatusCreated {
				t.Fatalf("registration %d = %d %s, want 201", i, code, body)
			}
		}
		code, body := e.do(t, "PUT", "/v1/providers/team/one-too-many", registration(owner))
		var p httpapi.Problem
		_ = json.Unmarshal([]byte(body), &p)
		if code != http.StatusConflict || !strings.HasSuffix(p.Type, "/too-many-registrations") ||
			!strings.Contains(p.Detail, fmt.Sprint(max)) || !strings.Contains(p.Detail, "delete one") {
			t.Fatalf("registration %d = %d %s, want 409 too-many-registrations naming the cap and the fix", max+1, code, body)
		}
		if code, body := e.do(t, "PUT", "/v1/providers/team/r3", registration(owner)); code != http.StatusOK {
			t.Errorf("replacing one of its own = %d %s, want 200", code, body)
		}
		if code, body := e.do(t, "PUT", "/v1/providers/team/theirs", registration("pod:team/fn-2/uid-2")); code != http.StatusCreated {
			t.Errorf("another owner's registration = %d %s, want 201", code, body)
		}
		if code, body := e.do(t, "PUT", "/v1/providers/team/declared", `{"type":"http"}`); code != http.StatusCreated {
			t.Errorf("a declared provider = %d %s, want 201 (no owner, no cap)", code, body)
		}
		if code, body := e.do(t, "DELETE", "/v1/providers/team/r0", ""); code != http.StatusNoContent {
			t.Fatalf("DELETE = %d %s", code, body)
		}
		waitRevision(t, e)
		if code, body := e.do(t, "PUT", "/v1/providers/team/one-too-many", registration(owner)); code != http.StatusCreated {
			t.Errorf("after deleting one = %d %s, want 201", code, body)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		e := newEnv(t)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created int
			refused int
		)
		for i := range max + 16 {
			wg.Go(func() {
				code, body := e.do(t, "PUT", fmt.Sprintf("/v1/providers/team/c%d", i), registration(owner))
				mu.Lock()
				defer mu.Unlock()
				switch code {
				case http.StatusCreated:
					created++
				case http.StatusConflict:
					refused++
				default:
					t.Errorf("registration %d = %d %s, want 201 or 409", i, code, body)
				}
			})
		}
		wg.Wait()
		if created != max || refused != 16 {
			t.Errorf("concurrent registrations: %d created, %d refused; want %d and 16", created, refused, max)
		}
		list, _, err := e.store.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != max {
			t.Errorf("store holds %d providers, want %d", len(list), max)
		}
	})
}
