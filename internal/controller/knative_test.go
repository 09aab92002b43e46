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
