package inject

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAddPort(t *testing.T) {
	tests := []struct {
		list string
		port int
		want string
	}{
		{list: "", port: 7470, want: "7470"},
		{list: "  ", port: 7470, want: "7470"},
		{list: "5432", port: 7470, want: "5432,7470"},
		{list: "5432, 7470", port: 7470, want: "5432, 7470"},
		{list: "7470", port: 7470, want: "7470"},
	}
	for _, tt := range tests {
		if got := addPort(tt.list, tt.port); got != tt.want {
			t.Errorf("addPort(%q, %d) = %q, want %q", tt.list, tt.port, got, tt.want)
		}
	}
}

func TestAnnotate(t *testing.T) {
	meta := &metav1.ObjectMeta{Annotations: map[string]string{"keep": "me", AnnotationIstioExcludeOutboundPorts: "5432"}}
	annotate(meta, DefaultConfig())
	want := map[string]string{
		"keep":                              "me",
		AnnotationInjectedVersion:           DefaultVersion,
		AnnotationIstioExcludeOutboundPorts: "5432,7470",
	}
	if diff := cmp.Diff(want, meta.Annotations); diff != "" {
		t.Errorf("annotate() (-want +got):\n%s", diff)
	}
}

func TestAnnotateWithoutIstioExclusion(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IstioExcludeControlPlane = false
	meta := &metav1.ObjectMeta{}
	annotate(meta, cfg)
	want := map[string]string{AnnotationInjectedVersion: DefaultVersion}
	if diff := cmp.Diff(want, meta.Annotations); diff != "" {
		t.Errorf("annotate() (-want +got):\n%s", diff)
	}
}
