package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTenantHijack replays the attack on the released commands: a function
// in namespace attacker runs with its own sidecar and registers an http
// provider with a higher version that claims every namespace as its scope.
// A consumer in default that asks for http@^1 must still get its own
// namespace's greeter, and the registration must be refused for reaching
// beyond its namespace.
func TestTenantHijack(t *testing.T) {
	cp := startTestControlPlane(t)
	greeter := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer greeter.Close()
	if _, _, err := run(t, "--control-plane", cp, "provider", "add", "greeter", "--type", "http", "--version", "1.0.0", "--url", greeter.URL); err != nil {
		t.Fatal(err)
	}

	// The attacker's function: ddi run with its own sidecar; the command
	// writes the sidecar's address where the test can read it.
	addrFile := filepath.Join(t.TempDir(), "addr")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--control-plane", cp, "run", "--name", "evil", "--namespace", "attacker", "--",
			"sh", "-c", `echo "$DDI_ADDR" > ` + addrFile + `.tmp && mv ` + addrFile + `.tmp ` + addrFile + ` && while [ ! -e ` + addrFile + `.stop ]; do sleep 0.05; done`}, &strings.Builder{}, &strings.Builder{})
	}()
	defer func() {
		// ddi run forwards signals, not the context: the command ends itself.
		_ = os.WriteFile(addrFile+".stop", nil, 0o600)
		<-done
		cancel()
	}()
	var sidecar string
	for deadline := time.Now().Add(20 * time.Second); sidecar == ""; {
		if b, err := os.ReadFile(addrFile); err == nil {
			sidecar = strings.TrimSpace(string(b))
		} else if time.Now().After(deadline) {
			t.Fatal("ddi run did not start its command within 20s")
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !strings.HasPrefix(sidecar, "http") {
		sidecar = "http://" + sidecar
	}

	register := func(name, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, sidecar+"/v1/providers/"+name, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var prob struct {
			Detail string `json:"detail"`
			Field  string `json:"field"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&prob)
		return resp.StatusCode, prob.Field + ": " + prob.Detail
	}
	resolve := func(sel string) string {
		t.Helper()
		out, _, err := run(t, "--control-plane", cp, "resolve", "frontend", "greeter="+sel, "-o", "json")
		if err != nil {
			t.Fatalf("ddi resolve frontend greeter=%s: %v", sel, err)
		}
		var b struct{ Namespace, Provider string }
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			t.Fatalf("ddi resolve -o json = %q: %v", out, err)
		}
		return b.Namespace + "/" + b.Provider
	}

	// Exporting to every namespace from a run-time registration is refused.
	code, detail := register("x", `{"type":"http","version":"1.999.0","endpoints":[{"url":"http://127.0.0.1:9"}],"scope":{"namespaces":["*"]}}`)
	if code != http.StatusBadRequest || !strings.Contains(detail, "scope.namespaces") {
		t.Errorf("register attacker/x with scope * = %d %q, want 400 naming scope.namespaces", code, detail)
	}
	if code, detail := register("x2", `{"type":"http","version":"1.999.0","endpoints":[{"url":"http://127.0.0.1:9"}],"scope":{"namespaces":["default"]}}`); code != http.StatusBadRequest {
		t.Errorf("register attacker/x2 with scope default = %d %q, want 400", code, detail)
	}
	// A registration inside its own namespace is fine, and still cannot
	// capture a consumer of another namespace.
	if code, detail := register("y", `{"type":"http","version":"1.999.0","endpoints":[{"url":"http://127.0.0.1:9"}]}`); code >= 300 {
		t.Fatalf("register attacker/y in its own namespace = %d %q, want success", code, detail)
	}
	if got := resolve("http@^1"); got != "default/greeter" {
		t.Errorf("ddi resolve frontend greeter=http@^1 = %s, want default/greeter", got)
	}
	if got := resolve("*/http@^1"); got != "default/greeter" {
		t.Errorf("ddi resolve frontend greeter=*/http@^1 = %s, want default/greeter (attacker/y serves only its namespace)", got)
	}
}
