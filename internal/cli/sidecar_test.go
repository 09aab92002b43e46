package cli

import (
	"bytes"
	"context"
	"encoding/pem"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ddi.dev/ddi/internal/testpki"
)

// lineSink sends every line written to it on a channel, dropping lines
// nobody waits for.
type lineSink chan string

func (s lineSink) Write(p []byte) (int, error) {
	select {
	case s <- string(p):
	default:
	}
	return len(p), nil
}

// tlsControlPlane is an https server that records stream requests and
// refused TLS handshakes.
type tlsControlPlane struct {
	*httptest.Server
	hellos  chan string
	refused lineSink
}

func startTLSControlPlane(t *testing.T) *tlsControlPlane {
	t.Helper()
	cp := &tlsControlPlane{hellos: make(chan string, 1), refused: make(lineSink, 1)}
	cp.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/stream" {
			select {
			case cp.hellos <- r.URL.Path:
			default:
			}
		}
		http.Error(w, "test control plane", http.StatusServiceUnavailable)
	}))
	cp.Config.ErrorLog = log.New(cp.refused, "", 0)
	cp.StartTLS()
	t.Cleanup(cp.Close)
	return cp
}

func TestSidecarControlPlaneCA(t *testing.T) {
	// Every httptest server has the same certificate.
	probe := startTLSControlPlane(t)
	dir := t.TempDir()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: probe.Certificate().Raw})
	caFile, otherFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "other.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherFile, testpki.CAPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		trusted bool
	}{
		{name: "PEM from the injector's environment", env: map[string]string{"DDI_CONTROL_PLANE_CA": string(caPEM)}, trusted: true},
		{name: "file from the flag", args: []string{"--control-plane-ca-file", caFile}, trusted: true},
		{name: "file from the environment", env: map[string]string{"DDI_CONTROL_PLANE_CA_FILE": caFile}, trusted: true},
		{name: "no CA: system roots"},
		{name: "the flag wins over the environment", env: map[string]string{"DDI_CONTROL_PLANE_CA": string(caPEM)},
			args: []string{"--control-plane-ca-file", otherFile}},
		{name: "a file wins over the PEM", env: map[string]string{"DDI_CONTROL_PLANE_CA": string(caPEM), "DDI_CONTROL_PLANE_CA_FILE": otherFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"DDI_CONTROL_PLANE_CA", "DDI_CONTROL_PLANE_CA_FILE"} {
				t.Setenv(k, tt.env[k])
			}
			cp := startTLSControlPlane(t)
			t.Setenv("DDI_CONTROL_PLANE", cp.URL)
			t.Setenv("DDI_NAME", "fn")
			t.Setenv("DDI_SIDECAR_LISTEN", "127.0.0.1:0")

			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			var out, errb bytes.Buffer
			go func() { done <- Run(ctx, append([]string{"sidecar"}, tt.args...), &out, &errb) }()
			select {
			case <-cp.hellos:
				if !tt.trusted {
					t.Errorf("the sidecar opened a stream to a control plane whose CA it was not given")
				}
			case line := <-cp.refused:
				if tt.trusted {
					t.Errorf("the sidecar refused the control plane's certificate: %s", line)
				}
			case err := <-done:
				t.Fatalf("ddi sidecar ended early: %v\n%s", err, errb.String())
			case <-time.After(10 * time.Second):
				t.Fatal("the sidecar neither connected nor refused the certificate within 10s")
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("ddi sidecar = %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ddi sidecar did not stop within 10s of cancel")
			}
		})
	}
}
