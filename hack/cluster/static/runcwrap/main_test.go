package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestBundleOf(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		want   string
		wantOK bool
	}{
		{name: "create", args: []string{"--root", "/r", "create", "--bundle", "/b", "id"}, want: "/b", wantOK: true},
		{name: "run with =", args: []string{"run", "--bundle=/b", "id"}, want: "/b", wantOK: true},
		{name: "short flag", args: []string{"create", "-b", "/b", "id"}, want: "/b", wantOK: true},
		{name: "start has no bundle", args: []string{"start", "id"}, wantOK: false},
		{name: "delete", args: []string{"delete", "--force", "id"}, wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := bundleOf(tc.args)
			if ok != tc.wantOK || (ok && got != tc.want) {
				t.Errorf("bundleOf(%q) = %q, %v, want %q, %v", tc.args, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestClampOOMScoreAdj(t *testing.T) {
	tests := []struct {
		name string
		adj  int
		want int
	}{
		{name: "sandbox", adj: -998, want: 0},
		{name: "burstable", adj: 900, want: 900},
		{name: "zero", adj: 0, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			spec := map[string]any{"ociVersion": "1.0.2", "process": map[string]any{"oomScoreAdj": tc.adj, "args": []string{"/pause"}}}
			data, _ := json.Marshal(spec)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := clampOOMScoreAdj(path); err != nil {
				t.Fatalf("clampOOMScoreAdj: %v", err)
			}
			var got struct {
				OCIVersion string `json:"ociVersion"`
				Process    struct {
					OOMScoreAdj int      `json:"oomScoreAdj"`
					Args        []string `json:"args"`
				} `json:"process"`
			}
			data, _ = os.ReadFile(path)
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			if got.Process.OOMScoreAdj != tc.want || got.OCIVersion != "1.0.2" || len(got.Process.Args) != 1 {
				t.Errorf("after clamp: %s, want oomScoreAdj %d and other fields kept", data, tc.want)
			}
		})
	}
}
