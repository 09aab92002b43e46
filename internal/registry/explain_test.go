package registry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ddi.dev/ddi/internal/registry"
)

// verdict is the part of a Candidate a test pins: who, which rule, and
// whether it was admitted and chosen.
type verdict struct {
	Provider string
	Rule     registry.Rule
	Admitted bool
	Chosen   bool
	Rank     int
}

func verdicts(cs []registry.Candidate) []verdict {
	out := make([]verdict, len(cs))
	for i, c := range cs {
		out[i] = verdict{Provider: c.Provider, Rule: c.Rule, Admitted: c.Admitted, Chosen: c.Chosen, Rank: c.Rank}
	}
	return out
}

func TestExplain(t *testing.T) {
	lease := func(p *registry.Provider) {
		p.Owner = "pod-1"
		p.Lease = &registry.Lease{TTL: registry.Duration(30e9)}
	}
	tests := []struct {
		name       string
		consumer   registry.Consumer
		dep        string
		providers  []*registry.Provider
		want       []verdict
		wantChosen string
		// wantDetail holds, per provider, a part of its Detail.
		wantDetail     map[string]string
		wantUnresolved string // part of Unresolved
	}{
		{
			name:     "every rule rejects one, highest version wins",
			consumer: checkout,
			dep:      "db=postgresql@^15,tier=gold",
			providers: []*registry.Provider{
				prov("team-a", "mysql", "mysql", "8.0.0"),
				prov("team-b", "other-ns", "postgresql", "15.9.0", labels("tier", "gold")),
				prov("team-a", "old", "postgresql", "14.2.0", labels("tier", "gold")),
				prov("team-a", "silver", "postgresql", "15.1.0", labels("tier", "silver")),
				prov("team-a", "private", "postgresql", "15.3.0", labels("tier", "gold"), scope(registry.Scope{Workloads: []string{"billing"}})),
				prov("team-a", "down", "postgresql", "15.8.0", labels("tier", "gold"), notReady),
				prov("team-a", "gold-1", "postgresql", "15.2.0", labels("tier", "gold")),
				prov("team-a", "gold-2", "postgresql", "15.4.0", labels("tier", "gold", "extra", "x"), lease),
			},
			want: []verdict{
				{Provider: "team-a/gold-2", Rule: registry.RuleHighestVersion, Admitted: true, Chosen: true, Rank: 1},
				{Provider: "team-a/gold-1", Rule: registry.RuleHighestVersion, Admitted: true, Rank: 2},
				{Provider: "team-a/mysql", Rule: registry.RuleType},
				{Provider: "team-b/other-ns", Rule: registry.RuleNamespace},
				{Provider: "team-a/old", Rule: registry.RuleVersion},
				{Provider: "team-a/silver", Rule: registry.RuleLabels},
				{Provider: "team-a/private", Rule: registry.RuleScope},
				{Provider: "team-a/down", Rule: registry.RuleReadiness},
			},
			wantChosen: "team-a/gold-2",
			wantDetail: map[string]string{
				"team-a/gold-2":   "chosen over team-a/gold-1: version 15.4.0 is higher than 15.2.0",
				"team-a/gold-1":   "lost to team-a/gold-2",
				"team-a/mysql":    "type mysql, not postgresql",
				"team-b/other-ns": "write */postgresql@^15,tier=gold",
				"team-a/old":      "version 14.2.0 is outside ^15",
				"team-a/silver":   "tier=gold (has tier=silver)",
				"team-a/private":  "scope.workloads [billing] does not list the consumer checkout",
				"team-a/down":     "0 of 2 endpoints ready",
			},
		},
		{
			name:     "tie-break: own namespace, then name",
			consumer: checkout,
			dep:      "greeter=*/http@^1",
			providers: []*registry.Provider{
				prov("shared", "a", "http", "1.2.0"),
				prov("team-a", "z", "http", "1.2.0"),
				prov("team-a", "y", "http", "1.2.0"),
				prov("team-a", "older", "http", "1.1.0"),
			},
			want: []verdict{
				{Provider: "team-a/y", Rule: registry.RuleTieBreak, Admitted: true, Chosen: true, Rank: 1},
				{Provider: "team-a/z", Rule: registry.RuleTieBreak, Admitted: true, Rank: 2},
				{Provider: "shared/a", Rule: registry.RuleTieBreak, Admitted: true, Rank: 3},
				{Provider: "team-a/older", Rule: registry.RuleHighestVersion, Admitted: true, Rank: 4},
			},
			wantChosen: "team-a/y",
			wantDetail: map[string]string{
				"team-a/y":     "chosen over team-a/z: both at version 1.2.0; team-a/y sorts before team-a/z",
				"shared/a":     "team-a/y is in the consumer's namespace team-a",
				"team-a/older": "version 1.2.0 is higher than 1.1.0",
			},
		},
		{
			name:     "explicit name: the same name elsewhere is rejected by namespace",
			consumer: checkout,
			dep:      "greeter=greeter",
			providers: []*registry.Provider{
				prov("default", "greeter", "http", "9.0.0"),
				prov("team-a", "greeter", "http", "1.0.0"),
			},
			want: []verdict{
				{Provider: "team-a/greeter", Admitted: true, Chosen: true, Rank: 1},
				{Provider: "default/greeter", Rule: registry.RuleNamespace},
			},
			wantChosen: "team-a/greeter",
			wantDetail: map[string]string{"team-a/greeter": "chosen: passed every rule"},
		},
		{
			name:     "explicit name out of scope is unresolved, nothing else chosen",
			consumer: checkout,
			dep:      "greeter=team-b/greeter",
			providers: []*registry.Provider{
				prov("team-b", "greeter", "http", "1.0.0", scope(registry.Scope{})),
			},
			want:           []verdict{{Provider: "team-b/greeter", Rule: registry.RuleScope}},
			wantDetail:     map[string]string{"team-b/greeter": "scope admits only its own namespace team-b"},
			wantUnresolved: "does not admit consumer team-a/checkout",
		},
		{
			name:     "unresolved: last candidates not ready",
			consumer: checkout,
			dep:      "cache=redis@*",
			providers: []*registry.Provider{
				prov("team-a", "r1", "redis", "7.0.0", noEndpoints),
				prov("team-a", "r2", "redis", "7.2.0", notReady),
			},
			want: []verdict{
				{Provider: "team-a/r1", Rule: registry.RuleReadiness},
				{Provider: "team-a/r2", Rule: registry.RuleReadiness},
			},
			wantDetail:     map[string]string{"team-a/r1": "no endpoint"},
			wantUnresolved: "2 matching provider(s) in scope, none with a ready endpoint",
		},
		{
			name:     "service account refused",
			consumer: checkout,
			dep:      "q=nats@*",
			providers: []*registry.Provider{
				prov("team-a", "n", "nats", "2.0.0", scope(registry.Scope{ServiceAccounts: []string{"ops"}})),
			},
			want:           []verdict{{Provider: "team-a/n", Rule: registry.RuleScope}},
			wantDetail:     map[string]string{"team-a/n": `does not list the consumer's service account "checkout-sa"`},
			wantUnresolved: "none whose scope admits this consumer",
		},
		{
			name:           "no provider named",
			consumer:       checkout,
			dep:            "greeter=greeter",
			want:           []verdict{},
			wantUnresolved: "no provider named greeter in namespace team-a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep, err := registry.ParseDependency(tt.dep)
			if err != nil {
				t.Fatal(err)
			}
			ex := registry.Explain(tt.consumer, dep, tt.providers)
			if diff := cmp.Diff(tt.want, verdicts(ex.Candidates)); diff != "" {
				t.Errorf("Explain(%s) candidates (-want +got):\n%s", tt.dep, diff)
			}
			if ex.Chosen != tt.wantChosen {
				t.Errorf("Explain(%s).Chosen = %q, want %q", tt.dep, ex.Chosen, tt.wantChosen)
			}
			if !strings.Contains(ex.Unresolved, tt.wantUnresolved) || (tt.wantUnresolved == "") != (ex.Unresolved == "") {
				t.Errorf("Explain(%s).Unresolved = %q, want it to contain %q", tt.dep, ex.Unresolved, tt.wantUnresolved)
			}
			for _, c := range ex.Candidates {
				if want, ok := tt.wantDetail[c.Provider]; ok && !strings.Contains(c.Detail, want) {
					t.Errorf("candidate %s detail = %q, want it to contain %q", c.Provider, c.Detail, want)
				}
			}
			// Resolve is the same code without recording: it must agree.
			p, err := registry.Resolve(tt.consumer, dep, tt.providers)
			var re *registry.ResolveError
			switch {
			case p != nil && p.Key() != ex.Chosen:
				t.Errorf("Resolve(%s) = %s, Explain chose %q", tt.dep, p.Key(), ex.Chosen)
			case err != nil && (!errors.As(err, &re) || re.Reason != ex.Unresolved):
				t.Errorf("Resolve(%s) error = %v, Explain says %q", tt.dep, err, ex.Unresolved)
			}
		})
	}
}

func TestExplainVisible(t *testing.T) {
	dep, err := registry.ParseDependency("greeter=*/http@*")
	if err != nil {
		t.Fatal(err)
	}
	ex := registry.Explain(checkout, dep, []*registry.Provider{
		prov("team-a", "own", "http", "1.0.0"),
		prov("team-b", "exported", "http", "2.0.0"),
		prov("team-c", "private", "http", "3.0.0", scope(registry.Scope{})),
	})
	ex.Visible("team-a")
	got := []string{}
	for _, c := range ex.Candidates {
		got = append(got, c.Provider)
	}
	if diff := cmp.Diff([]string{"team-b/exported", "team-a/own"}, got); diff != "" || ex.Hidden != 1 {
		t.Errorf("Visible(team-a) kept %v (-want +got):\n%s hidden %d, want 1", got, diff, ex.Hidden)
	}
}
