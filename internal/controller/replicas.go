package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ddi.dev/ddi/internal/controlplane"
)

// The replicas of the controller find each other through the
// EndpointSlices of its Service (Options.ServiceName): every ready
// endpoint but this pod's is another replica, reached on the Service's
// port named streamPortName. Each presents its service account's
// projected token of audience Options.ReplicaAudience
// (Options.ReplicaTokenFile); the other checks it with a TokenReview and
// accepts only its own service account (podauth.VerifyReplica). See
// docs/kubernetes.md, "Replicas".

// streamPortName is the Service port (and the container port) of the
// control plane API.
const streamPortName = "stream"

// replicasFor returns the controlplane.Replicas of this replica, or nil
// when merging is off: no token file (a single process out of cluster;
// deploy/ mounts one), or no stream listener. The token's own subject
// names the service account the other replicas must run as.
func replicasFor(o Options, reader client.Reader, sc *serving, log *slog.Logger) (*controlplane.Replicas, string, error) {
	if o.StreamAddr == "" || o.ReplicaTokenFile == "" {
		return nil, "", nil
	}
	token, err := readToken(o.ReplicaTokenFile)
	if errors.Is(err, os.ErrNotExist) {
		log.Info("no replica token: GET /v1/graph and /v1/sidecars show this replica's sidecars only", "replica_token_file", o.ReplicaTokenFile)
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("--replica-token-file: %w", err)
	}
	sa, err := tokenSubject(token)
	if err != nil {
		return nil, "", fmt.Errorf("--replica-token-file %s: %w", o.ReplicaTokenFile, err)
	}
	scheme := "https"
	if sc.streamTLS == nil {
		scheme = "http"
	}
	serverName := o.ReplicaServerName
	if serverName == "" {
		serverName = controlPlaneHost(o.Inject.ControlPlaneURL)
	}
	rp := &controlplane.Replicas{
		Self: o.PodName,
		Peers: func(ctx context.Context) ([]controlplane.Peer, error) {
			return endpointPeers(ctx, reader, o.Namespace, o.ServiceName, o.PodName, scheme)
		},
		Client:  replicaClient(sc.caBundle, serverName, o.ReplicaDial, o.ReplicaTimeout),
		Token:   func() (string, error) { return readToken(o.ReplicaTokenFile) },
		Timeout: o.ReplicaTimeout,
		Poll:    o.ReplicaPoll,
	}
	return rp, sa, nil
}

// readToken reads a projected token file (the kubelet rewrites it before
// it expires, so it is read for every request).
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return t, nil
}

// tokenSubject is the unverified subject of this replica's own token: the
// user name of its service account, system:serviceaccount:NS:NAME.
func tokenSubject(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a service account token (a JWT)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("not a service account token (a JWT)")
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", errors.New("the token's claims are not JSON")
	}
	if !strings.HasPrefix(c.Sub, "system:serviceaccount:") {
		return "", fmt.Errorf("the token's subject %q is not a service account", c.Sub)
	}
	return c.Sub, nil
}

// endpointPeers lists the other ready replicas from the EndpointSlices of
// Service ns/service: one per pod (dual-stack slices name a pod twice),
// each with the URL of its port named streamPortName. Endpoints that are
// not ready (starting, terminating) are left out.
func endpointPeers(ctx context.Context, reader client.Reader, ns, service, self, scheme string) ([]controlplane.Peer, error) {
	var list discoveryv1.EndpointSliceList
	if err := reader.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		return nil, fmt.Errorf("list the EndpointSlices of Service %s/%s: %w", ns, service, err)
	}
	seen := map[string]bool{}
	var out []controlplane.Peer
	for _, s := range list.Items {
		var port int32
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == streamPortName && p.Port != nil {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
				continue
			}
			name := ep.Addresses[0]
			switch {
			case ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && ep.TargetRef.Name != "":
				name = ep.TargetRef.Name
			case ep.Hostname != nil && *ep.Hostname != "":
				name = *ep.Hostname
			}
			if name == self || seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, controlplane.Peer{Name: name, URL: scheme + "://" + net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))})
		}
	}
	return out, nil
}

// replicaClient is the HTTP client for other replicas. It dials their pod
// addresses and verifies their certificate (the one serving certificate
// every replica shares) for serverName, the control plane's host that
// the certificate names, against the CA bundle as it is at each
// handshake, so that a rotated CA is followed. dial replaces the dialer
// (tests).
func replicaClient(caBundle func() []byte, serverName string, dial func(ctx context.Context, network, addr string) (net.Conn, error), timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if dial != nil {
		tr.DialContext = dial
	}
	tr.TLSHandshakeTimeout = timeout
	tr.MaxIdleConnsPerHost = 2
	if caBundle != nil {
		tr.TLSClientConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			ServerName: serverName,
			// The address dialled is a pod's, which the certificate does
			// not name: VerifyConnection checks the chain and serverName
			// instead of the default verification.
			InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the replica presented no certificate")
				}
				roots := x509.NewCertPool()
				if !roots.AppendCertsFromPEM(caBundle()) {
					return errors.New("no CA to verify the replica's certificate with")
				}
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: serverName, Roots: roots, Intermediates: inter})
				return err
			},
		}
	}
	return &http.Client{Transport: tr}
}
