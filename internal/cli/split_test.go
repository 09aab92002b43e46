package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"ddi.dev/ddi/internal/registry"
)

// TestResolveSplit: `ddi resolve` against a real local control plane shows
// a weighted split target by target: declared weight, share, provider,
// the primary marked; an unresolved canary's weight goes to the rest.
// --explain explains each target.
func TestResolveSplit(t *testing.T) {
	cp := startTestControlPlane(t)
	if _, _, err := run(t, "--control-plane", cp, "provider", "add", "greeter-v1", "--type", "http", "--version", "1.0.0", "--url", "http://127.0.0.1:9001"); err != nil {
		t.Fatal(err)
	}
	resolve := func(args ...string) string {
		t.Helper()
		out, _, err := run(t, append([]string{"--control-plane", cp, "resolve", "frontend"}, args...)...)
		if err != nil {
			t.Fatalf("resolve %v = %v", args, err)
		}
		return out
	}
	// The index follows the store asynchronously.
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		out = resolve("greeter=90%greeter-v1,10%greeter-v2")
		if strings.Contains(out, "default/greeter-v1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := []string{
		"greeter=90%greeter-v1,10%greeter-v2 splits invocations; primary (binding files, typed clients): default/greeter-v1",
		"",
		"WEIGHT  SHARE  TARGET      PROVIDER                      VERSION  ENDPOINTS",
		"90%     100%   greeter-v1  default/greeter-v1 (primary)  1.0.0    http://127.0.0.1:9001",
		"10%     0%     greeter-v2  -                             -        unresolved: no provider named greeter-v2 in namespace default",
	}
	if got := strings.Split(strings.TrimRight(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("resolve of a split with its canary missing printed:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}

	if _, _, err := run(t, "--control-plane", cp, "provider", "add", "greeter-v2", "--type", "http", "--version", "2.0.0", "--url", "http://127.0.0.1:9002"); err != nil {
		t.Fatal(err)
	}
	var b registry.Binding
	for deadline := time.Now().Add(10 * time.Second); ; {
		out = resolve("greeter=90%greeter-v1,10%greeter-v2", "-o", "json")
		b = registry.Binding{}
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			t.Fatalf("resolve -o json = %q: %v", out, err)
		}
		if len(b.Split) == 2 && b.Split[1].Provider != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b.Provider != "greeter-v1" || len(b.Split) != 2 || b.Split[0].Share != 90 || b.Split[1].Share != 10 || b.Split[1].Provider != "greeter-v2" {
		t.Errorf("resolve -o json = %s, want greeter-v1 primary at 90%% and greeter-v2 at 10%%", out)
	}

	out = resolve("greeter=90%greeter-v1,10%greeter-v2", "--explain")
	for _, w := range []string{
		"greeter=90%greeter-v1,10%greeter-v2 for default/frontend splits invocations",
		"primary: default/greeter-v1",
		"target greeter-v1: weight 90%, share 90%, primary",
		"target greeter-v2: weight 10%, share 10%\n",
		"chosen: default/greeter-v2",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("resolve --explain of a split printed:\n%s\nwant it to contain %q", out, w)
		}
	}
}

// TestSplitBadInputCLI: a malformed split is refused by `ddi resolve` and
// `ddi run` before anything is sent, with an error naming the target, the
// field and the fix.
func TestSplitBadInputCLI(t *testing.T) {
	cp := startTestControlPlane(t)
	tests := []struct {
		name, dep, want string
	}{
		{name: "weights not adding up to 100", dep: "greeter=90%a,20%b", want: `dependency "greeter": the weights add up to 110, not 100: change them so that they do, as in 90%greeter-v1,10%greeter-v2`},
		{name: "negative weight", dep: "greeter=110%a,-10%b", want: `dependency "greeter": target 1 weight: 110 is not a whole percentage from 0 to 100`},
		{name: "missing selector", dep: "greeter=90%a,10%", want: `dependency "greeter": target 2 selector: is missing: name a provider (greeter-v2) or a type and range (http@^2) after the weight`},
		{name: "duplicate targets", dep: "greeter=50%a,50%a", want: `dependency "greeter": target 2 selector: "a" repeats target 1: list each target once and give it the sum of the weights`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, args := range [][]string{
				{"--control-plane", cp, "resolve", "frontend", tt.dep},
				{"--control-plane", cp, "run", "--name", "fn", "--dep", tt.dep, "--", "true"},
			} {
				_, _, err := run(t, args...)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("ddi %s = %v, want an error saying %q", strings.Join(args[2:], " "), err, tt.want)
				}
			}
		})
	}
	out, _, err := run(t, "--control-plane", cp, "provider", "list", "-o", "json")
	if err != nil || strings.Contains(out, `"name"`) {
		t.Errorf("provider list after bad input = %s (%v), want nothing stored", out, err)
	}
}
