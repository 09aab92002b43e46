package controller

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// Files of a certificate directory, as cert-manager writes a Certificate's
// Secret.
const (
	certFile = "tls.crt"
	keyFile  = "tls.key"
	caFile   = "ca.crt"
)

// certDir serves the certificate someone else (cert-manager) keeps in a
// directory, for the webhook and the sidecars' stream alike: tls.crt and
// tls.key, reloaded when they change, and ca.crt, the CA injected into
// sidecars, read again whenever the certificate changes (the kubelet
// swaps all files of a Secret volume at once). It is a manager runnable.
type certDir struct {
	*certwatcher.CertWatcher
	caPath string
	log    *slog.Logger

	mu sync.RWMutex
	ca []byte
}

// newCertDir reads the certificate in dir; a missing or broken one is an
// error.
func newCertDir(dir string, log *slog.Logger) (*certDir, error) {
	w, err := certwatcher.New(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("--webhook-cert-dir %s: %w", dir, err)
	}
	d := &certDir{CertWatcher: w, caPath: filepath.Join(dir, caFile), log: log}
	// Called at once with the certificate just read, then on every change.
	w.RegisterCallback(func(tls.Certificate) { d.loadCA() })
	return d, nil
}

// loadCA reads ca.crt. A missing or empty file means no CA (the sidecars
// then verify against their system roots, as for a certificate from a
// public issuer); an unreadable or malformed one keeps the previous CA.
func (d *certDir) loadCA() {
	b, err := os.ReadFile(d.caPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b = nil
	case err != nil:
		d.log.Error("reading the CA for sidecars failed; keeping the previous one", "file", d.caPath, "err", err)
		return
	case len(bytes.TrimSpace(b)) > 0 && !x509.NewCertPool().AppendCertsFromPEM(b):
		d.log.Error("the CA for sidecars holds no PEM certificate; keeping the previous one", "file", d.caPath)
		return
	}
	if len(bytes.TrimSpace(b)) == 0 {
		b = nil
	}
	d.mu.Lock()
	changed := !bytes.Equal(d.ca, b)
	d.ca = b
	d.mu.Unlock()
	if changed && b == nil {
		d.log.Warn("no CA for sidecars: injected sidecars verify the control plane against their system roots", "file", d.caPath)
	} else if changed {
		d.log.Info("loaded the CA for sidecars", "file", d.caPath)
	}
}

// CABundle returns the CA injected into sidecars; nil when there is none.
// Callers must not modify it.
func (d *certDir) CABundle() []byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.ca
}

// controlPlaneHost returns the host of an https control plane URL, or ""
// for any other URL.
func controlPlaneHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" {
		return ""
	}
	return u.Hostname()
}

// addHost adds host to the serving certificate's names unless they have
// it.
func addHost(dnsNames []string, ips []net.IP, host string) ([]string, []net.IP) {
	if host == "" {
		return dnsNames, ips
	}
	if ip := net.ParseIP(host); ip != nil {
		for _, have := range ips {
			if have.Equal(ip) {
				return dnsNames, ips
			}
		}
		return dnsNames, append(ips, ip)
	}
	for _, have := range dnsNames {
		if have == host {
			return dnsNames, ips
		}
	}
	return append(dnsNames, host), ips
}

// certNames reports whether cert, as served by get, names host.
func certNames(get func(*tls.ClientHelloInfo) (*tls.Certificate, error), host string) error {
	cert, err := get(&tls.ClientHelloInfo{ServerName: host})
	if err != nil {
		return err
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return errors.New("no certificate")
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return err
		}
	}
	return leaf.VerifyHostname(host)
}
