package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Lifetimes of the self-managed certificates. A certificate is replaced
// once less than a third of its lifetime is left.
const (
	CALifetime      = 10 * 365 * 24 * time.Hour
	ServingLifetime = 365 * 24 * time.Hour
)

// Keys of the certificate Secret.
const (
	keyCACert     = "ca.crt"
	keyCAKey      = "ca.key"
	keyPrevCACert = "ca-previous.crt"
	keyTLSCert    = corev1.TLSCertKey
	keyTLSKey     = corev1.TLSPrivateKeyKey
)

// CertOptions configure Certs.
type CertOptions struct {
	// Client stores the certificates in Secret Namespace/SecretName so
	// that every replica serves the same ones. Nil keeps them in memory
	// (out of cluster, tests).
	Client     client.Client
	Namespace  string
	SecretName string
	// DNSNames and IPs are the serving certificate's subject alternative
	// names: the webhook Service's DNS names in cluster, 127.0.0.1 or
	// localhost out of cluster.
	DNSNames []string
	IPs      []net.IP
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Certs is the webhook's self-managed serving certificate and the CA that
// signed it (after knative/pkg's webhook certificates). Ensure loads or
// creates them; GetCertificate serves them; CABundle is what the
// MutatingWebhookConfiguration, and the injected sidecars, must trust. The
// controller serves the control plane's stream with the same certificate.
// Changed is signalled whenever the CA bundle changes.
type Certs struct {
	opts CertOptions
	log  *slog.Logger

	mu       sync.RWMutex
	cert     *tls.Certificate
	leaf     *x509.Certificate
	caBundle []byte
	mem      map[string][]byte // the Secret's data, also without a Secret

	changed chan struct{}
}

// NewCerts returns Certs that hold nothing until Ensure runs.
func NewCerts(opts CertOptions) (*Certs, error) {
	if opts.Client != nil && (opts.Namespace == "" || opts.SecretName == "") {
		return nil, errors.New("webhook certs: a Secret needs Namespace and SecretName")
	}
	if len(opts.DNSNames) == 0 && len(opts.IPs) == 0 {
		return nil, errors.New("webhook certs: give the serving certificate at least one DNS name or IP")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Certs{opts: opts, log: opts.Logger, changed: make(chan struct{}, 1)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// ServiceDNSNames returns the names a Service is reached by in cluster.
func ServiceDNSNames(service, namespace string) []string {
	return []string{
		service,
		service + "." + namespace,
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
	}
}

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (c *Certs) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cert == nil {
		return nil, errors.New("webhook serving certificate is not ready yet")
	}
	return c.cert, nil
}

// CABundle returns the PEM certificates that verify the serving
// certificate: the current CA, and the previous one while it is still
// valid, so that a CA rotation never leaves a window of failed calls.
func (c *Certs) CABundle() []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return bytes.Clone(c.caBundle)
}

// Changed is signalled (capacity one, never closed) when the CA bundle
// changes.
func (c *Certs) Changed() <-chan struct{} { return c.changed }

// Start keeps the certificates current until ctx ends (a
// manager.Runnable). Every replica runs it, so each one picks up a
// rotation that another made.
func (c *Certs) Start(ctx context.Context) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := c.Ensure(ctx); err != nil {
				c.log.Error("webhook certificate refresh failed", "err", err)
			}
		}
	}
}

// NeedLeaderElection is false: every replica serves the webhook.
func (c *Certs) NeedLeaderElection() bool { return false }

// Ensure loads the certificates (from the Secret, when there is one),
// creates or renews what is missing or due, stores them, and starts
// serving them.
func (c *Certs) Ensure(ctx context.Context) error {
	if c.opts.Client == nil {
		c.mu.RLock()
		data := c.mem
		c.mu.RUnlock()
		next, changed, err := c.renew(data)
		if err != nil || !changed {
			return err
		}
		return c.use(next)
	}
	for attempt := 0; ; attempt++ {
		err := c.ensureSecret(ctx)
		if err == nil || attempt == 4 || !(apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) {
			return err
		}
		// Another replica wrote first: read what it wrote.
	}
}

func (c *Certs) ensureSecret(ctx context.Context) error {
	cl := c.opts.Client
	key := client.ObjectKey{Namespace: c.opts.Namespace, Name: c.opts.SecretName}
	var sec corev1.Secret
	err := cl.Get(ctx, key, &sec)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read webhook certificate secret %s: %w", key, err)
	}
	exists := err == nil
	next, changed, err := c.renew(sec.Data)
	if err != nil {
		return err
	}
	if changed {
		if !exists {
			sec = corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
					Labels: map[string]string{"app.kubernetes.io/name": "ddi", "app.kubernetes.io/component": "webhook"}},
				Type: corev1.SecretTypeTLS,
				Data: next,
			}
			if err := cl.Create(ctx, &sec); err != nil {
				return fmt.Errorf("create webhook certificate secret %s: %w", key, err)
			}
			c.log.Info("created webhook certificates", "secret", key.String())
		} else {
			sec.Data = next
			if err := cl.Update(ctx, &sec); err != nil {
				return fmt.Errorf("update webhook certificate secret %s: %w", key, err)
			}
			c.log.Info("renewed webhook certificates", "secret", key.String())
		}
	}
	return c.use(next)
}

// renew returns data with whatever was missing, invalid or due replaced,
// and whether anything was.
func (c *Certs) renew(data map[string][]byte) (map[string][]byte, bool, error) {
	now := c.opts.Now()
	out := make(map[string][]byte, 5)
	for k, v := range data {
		out[k] = v
	}
	changed := false
	ca, caKey, err := parsePair(out[keyCACert], out[keyCAKey])
	if err != nil || due(ca, now) {
		if ca != nil && now.Before(ca.NotAfter) {
			out[keyPrevCACert] = out[keyCACert] // still trusted until it expires
		} else {
			delete(out, keyPrevCACert)
		}
		ca, caKey, out[keyCACert], out[keyCAKey], err = newCA(now)
		if err != nil {
			return nil, false, err
		}
		delete(out, keyTLSCert) // re-issue under the new CA
		changed = true
	}
	if prev := out[keyPrevCACert]; len(prev) > 0 {
		if p, err := parseCert(prev); err != nil || !now.Before(p.NotAfter) {
			delete(out, keyPrevCACert)
			changed = true
		}
	}
	leaf, _, err := parsePair(out[keyTLSCert], out[keyTLSKey])
	if err != nil || due(leaf, now) || leaf.CheckSignatureFrom(ca) != nil || !c.covers(leaf) {
		out[keyTLSCert], out[keyTLSKey], err = c.newServing(ca, caKey, now)
		if err != nil {
			return nil, false, err
		}
		changed = true
	}
	return out, changed, nil
}

// covers reports whether leaf names every wanted DNS name and IP.
func (c *Certs) covers(leaf *x509.Certificate) bool {
	for _, n := range c.opts.DNSNames {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range c.opts.IPs {
		if leaf.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

// use starts serving data.
func (c *Certs) use(data map[string][]byte) error {
	cert, err := tls.X509KeyPair(data[keyTLSCert], data[keyTLSKey])
	if err != nil {
		return fmt.Errorf("webhook serving certificate: %w", err)
	}
	bundle := append(bytes.Clone(data[keyCACert]), data[keyPrevCACert]...)
	c.mu.Lock()
	old := c.caBundle
	c.cert, c.leaf, c.caBundle, c.mem = &cert, cert.Leaf, bundle, data
	c.mu.Unlock()
	if !bytes.Equal(old, bundle) {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

func due(cert *x509.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return now.After(cert.NotAfter.Add(-life / 3))
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, err
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, nil, errors.New("no PEM key")
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("key does not match certificate")
	}
	return cert, key, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func encode(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("ddi-webhook-ca@%d", now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	certPEM, keyPEM, err := encode(der, key)
	return cert, key, certPEM, keyPEM, err
}

func (c *Certs) newServing(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate serving key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	cn := "ddi-webhook"
	if len(c.opts.DNSNames) > 0 {
		cn = c.opts.DNSNames[len(c.opts.DNSNames)-1]
	}
	notAfter := now.Add(ServingLifetime)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     c.opts.DNSNames,
		IPAddresses:  c.opts.IPs,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign serving certificate: %w", err)
	}
	return encode(der, key)
}
