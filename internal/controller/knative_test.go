package controller

import "testing"

func TestKnativeServing(t *testing.T) {
	status := func(latest string, conds ...string) map[string]any {
		var cs []any
		for i := 0; i+1 < len(conds); i += 2 {
			cs = append(cs, map[string]any{"type": conds[i], "status": conds[i+1]})
		}
		st := map[string]any{"conditions": cs}
		if latest != "" {
			st["latestReadyRevisionName"] = latest
		}
		return map[string]any{"status": st}
	}
	tests := []struct {
		name string
		ksvc map[string]any
		want bool
	}{
		{name: "ready", ksvc: status("greeter-v1", "Ready", "True", "ConfigurationsReady", "True", "RoutesReady", "True"), want: true},
		{name: "rolling out a new revision", ksvc: status("greeter-v1", "Ready", "Unknown", "ConfigurationsReady", "Unknown", "RoutesReady", "True"), want: true},
		{name: "new revision failed, old one serves", ksvc: status("greeter-v1", "Ready", "False", "ConfigurationsReady", "False", "RoutesReady", "True"), want: true},
		{name: "route being reprogrammed", ksvc: status("greeter-v2", "Ready", "Unknown", "ConfigurationsReady", "True", "RoutesReady", "Unknown"), want: true},
		{name: "first revision not ready yet", ksvc: status("", "Ready", "Unknown", "ConfigurationsReady", "Unknown", "RoutesReady", "Unknown"), want: false},
		{name: "route failed", ksvc: status("greeter-v1", "Ready", "False", "ConfigurationsReady", "True", "RoutesReady", "False"), want: false},
		{name: "no RoutesReady, Ready", ksvc: status("greeter-v1", "Ready", "True"), want: true},
		{name: "no RoutesReady, not Ready", ksvc: status("greeter-v1", "Ready", "Unknown"), want: false},
		{name: "no status", ksvc: map[string]any{}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := knativeServing(tc.ksvc); got != tc.want {
				t.Errorf("knativeServing(%v) = %v, want %v", tc.ksvc, got, tc.want)
			}
		})
	}
}

func TestTrafficSplit(t *testing.T) {
	entry := func(name string, pct int64, latest bool) any {
		m := map[string]any{"percent": pct, "latestRevision": latest}
		if name != "" {
			m["revisionName"] = name
		}
		return m
	}
	ksvc := func(latest string, entries ...any) map[string]any {
		return map[string]any{"status": map[string]any{"latestReadyRevisionName": latest, "traffic": entries}}
	}
	tests := []struct {
		name string
		ksvc map[string]any
		want string
	}{
		{name: "all to the latest", ksvc: ksvc("g-2", entry("g-2", 100, true)), want: "100% g-2 -"},
		{name: "canary: the larger share first", ksvc: ksvc("g-2", entry("g-2", 20, true), entry("g-1", 80, false)), want: "80% g-1 -, 20% g-2 -"},
		{name: "equal shares keep Knative's order", ksvc: ksvc("g-2", entry("g-2", 50, true), entry("g-1", 50, false)), want: "50% g-2 -, 50% g-1 -"},
		{name: "a revision listed twice is summed", ksvc: ksvc("g-2", entry("g-2", 60, true), entry("g-1", 10, false), entry("g-2", 30, false)), want: "90% g-2 -, 10% g-1 -"},
		{name: "tags without traffic are left out", ksvc: ksvc("g-2", entry("g-2", 100, true), entry("g-1", 0, false)), want: "100% g-2 -"},
		{name: "latest without a name", ksvc: ksvc("g-3", entry("", 100, true)), want: "100% g-3 -"},
		{name: "no route yet", ksvc: ksvc("g-1"), want: ""},
		{name: "no status", ksvc: map[string]any{}, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := (knativeRevisions{traffic: trafficSplit(tc.ksvc)}).line(); got != tc.want {
				t.Errorf("trafficSplit(%v) = %q, want %q", tc.ksvc, got, tc.want)
			}
		})
	}
}
