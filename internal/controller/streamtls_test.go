package controller

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddi.dev/ddi/internal/webhook"
)

func TestValidateStreamScheme(t *testing.T) {
	tests := []struct {
		name     string
		insecure bool
		url      string
		noStream bool
		wantErr  string // "" means valid
	}{
		{name: "default: TLS and https", url: "https://ddi-controller.ddi-system.svc:7470"},
		{name: "insecure and http", insecure: true, url: "http://ddi-controller.ddi-system.svc:7470"},
		{name: "insecure but https", insecure: true, url: "https://ddi-controller.ddi-system.svc:7470", wantErr: "--stream-insecure serves plain HTTP"},
		{name: "TLS but http", url: "http://ddi-controller.ddi-system.svc:7470", wantErr: "is plain HTTP, but the stream is served over TLS"},
		{name: "no stream, http elsewhere", noStream: true, url: "http://elsewhere:7470"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			o.StreamInsecure = tt.insecure
			o.Inject.ControlPlaneURL = tt.url
			if tt.noStream {
				o.StreamAddr = ""
			}
			err := o.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultsServeTLS(t *testing.T) {
	o := DefaultOptions()
	if o.StreamInsecure || !strings.HasPrefix(o.Inject.ControlPlaneURL, "https://ddi-controller.ddi-system.svc:") {
		t.Errorf("defaults: insecure %v, sidecar control plane %q; want TLS and https://ddi-controller.ddi-system.svc", o.StreamInsecure, o.Inject.ControlPlaneURL)
	}
	host := controlPlaneHost(o.Inject.ControlPlaneURL)
	names := webhook.ServiceDNSNames(DefaultServiceName, DefaultNamespace)
	if got, _ := addHost(names, nil, host); len(got) != len(names) {
		t.Errorf("the default control plane host %q is not among the Service's names %v", host, names)
	}
}

func TestAddHost(t *testing.T) {
	names, ips := addHost([]string{"a"}, nil, "b.example")
	names, ips = addHost(names, ips, "10.0.0.7")
	names, ips = addHost(names, ips, "a")
	names, ips = addHost(names, ips, "10.0.0.7")
	names, ips = addHost(names, ips, "")
	if strings.Join(names, ",") != "a,b.example" || len(ips) != 1 || ips[0].String() != "10.0.0.7" {
		t.Errorf("addHost: names %v, ips %v; want a,b.example and 10.0.0.7 once each", names, ips)
	}
}

// startStream runs serveStream on a loopback port and returns its address.
func startStream(t *testing.T, tlsConf *tls.Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	go func() {
		done <- serveStream(ctx, "127.0.0.1:0", ok, tlsConf, slog.New(slog.DiscardHandler), func(a string) { addrs <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveStream = %v, want nil after cancel", err)
		}
	})
	select {
	case a := <-addrs:
		return a
	case err := <-done:
		t.Fatalf("serveStream = %v", err)
		return ""
	}
}

func clientTrusting(t *testing.T, caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	// As the sidecar's transport: HTTP/2 when the server offers it.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func TestServeStream(t *testing.T) {
	certs, err := webhook.NewCerts(webhook.CertOptions{DNSNames: []string{"ddi-controller.ddi-system.svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	addr := startStream(t, &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12})

	t.Run("with the CA", func(t *testing.T) {
		resp, err := clientTrusting(t, certs.CABundle()).Get("https://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.ProtoMajor != 2 {
			t.Errorf("GET over TLS = %d over HTTP/%d, want 204 over HTTP/2", resp.StatusCode, resp.ProtoMajor)
		}
	})
	t.Run("without the CA", func(t *testing.T) {
		_, err := clientTrusting(t, nil).Get("https://" + addr + "/healthz")
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Errorf("GET without the CA: err = %v, want a certificate verification error", err)
		}
	})
	t.Run("plain HTTP", func(t *testing.T) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET over plain HTTP = %d, want 400", resp.StatusCode)
		}
	})
	t.Run("insecure mode", func(t *testing.T) {
		addr := startStream(t, nil)
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("GET over plain HTTP with --stream-insecure = %d, want 204", resp.StatusCode)
		}
	})
}

// issue returns a new CA and a serving certificate for host that it
// signed, all in PEM.
func issue(t *testing.T, host string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for _, name := range []string{caFile, keyFile, certFile} { // the certificate last: its change reloads
		if b, ok := files[name]; ok {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCertDir(t *testing.T) {
	const host = "ddi-controller.ddi-system.svc"
	dir := t.TempDir()
	ca1, cert1, key1 := issue(t, host)
	writeFiles(t, dir, map[string][]byte{certFile: cert1, keyFile: key1, caFile: ca1})
	d, err := newCertDir(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.CABundle(); string(got) != string(ca1) {
		t.Errorf("CABundle() = %q, want ca.crt %q", got, ca1)
	}
	if err := certNames(d.GetCertificate, host); err != nil {
		t.Errorf("certNames(%s) = %v, want nil", host, err)
	}
	if err := certNames(d.GetCertificate, "other.example"); err == nil {
		t.Error("certNames(other.example) = nil, want an error: the certificate does not name it")
	}

	// Changes made before the watch is in place are found by polling.
	d.WithWatchInterval(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	defer func() { cancel(); <-done }()

	waitCA := func(want []byte) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for string(d.CABundle()) != string(want) {
			if time.Now().After(deadline) {
				t.Fatalf("CABundle() = %q after the files changed, want %q", d.CABundle(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// cert-manager renews the certificate under a new CA.
	ca2, cert2, key2 := issue(t, host)
	writeFiles(t, dir, map[string][]byte{caFile: ca2, keyFile: key2, certFile: cert2})
	waitCA(ca2)
	// A public issuer: no CA for the sidecars.
	if err := os.Remove(filepath.Join(dir, caFile)); err != nil {
		t.Fatal(err)
	}
	_, cert3, key3 := issue(t, host)
	writeFiles(t, dir, map[string][]byte{keyFile: key3, certFile: cert3})
	waitCA(nil)
}

func TestNewCertDirNeedsTheCertificate(t *testing.T) {
	if _, err := newCertDir(t.TempDir(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--webhook-cert-dir") {
		t.Errorf("newCertDir(empty dir) = %v, want an error naming --webhook-cert-dir", err)
	}
}
