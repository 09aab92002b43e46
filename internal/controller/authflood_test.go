package controller_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ddiclient "ddi.dev/ddi/internal/client"
	"ddi.dev/ddi/internal/kubetest"
	"ddi.dev/ddi/internal/protocol"
	"ddi.dev/ddi/internal/registry"
)

// fromAddr returns an HTTP client for cp's stream that connects from the
// loopback address src, so that the control plane sees pods and the
// attacker at different source addresses, as in a cluster.
func fromAddr(t *testing.T, cp *kubetest.ControlPlane, src string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cp.StreamCA)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// junkToken is shaped like a pod's projected token for audience ddi (so it
// passes every local check) but is signed by nobody: only a TokenReview
// can refuse it. Each call returns a new one.
func junkToken(i int64) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{
		"aud": []string{"ddi"}, "exp": time.Now().Add(time.Hour).Unix(), "sub": fmt.Sprintf("system:serviceaccount:%s:fn", ns),
		"kubernetes.io": map[string]any{"namespace": ns, "pod": map[string]string{"name": "x", "uid": fmt.Sprint(i)}},
	})
	return enc([]byte(`{"alg":"RS256","kid":"junk"}`)) + "." + enc(claims) + "." + enc([]byte(fmt.Sprint("sig", i)))
}

// TestAuthUnderJunkTokenFlood floods the control plane with bearer tokens
// that only the API server can refuse, from one address, while pods at
// other addresses start (open their stream) and keep renewing run-time
// registrations. Target: no failed renewal, every pod connected.
func TestAuthUnderJunkTokenFlood(t *testing.T) {
	cp := kubetest.RunControlPlane(t, kubetest.Options{})
	ctx := t.Context()
	cp.Namespace(t, ns, nil)
	cp.ServiceAccount(t, ns, "fn")

	const pods = 6
	var tokens []string
	for i := range pods {
		p := pod(fmt.Sprintf("fn-%d", i), "fn", "")
		create(t, cp, p)
		tokens = append(tokens, podToken(t, cp, p))
	}
	podClient := func(i int) *ddiclient.Client {
		return &ddiclient.Client{BaseURL: cp.StreamURL, HTTP: fromAddr(t, cp, fmt.Sprintf("127.0.1.%d", i+1)), TokenFile: tokens[i]}
	}

	// The flood: eight workers, fresh junk tokens, from 127.0.2.1.
	stop := make(chan struct{})
	var junk, throttled, refused, otherStatus atomic.Int64
	var wg sync.WaitGroup
	attacker := fromAddr(t, cp, "127.0.2.1")
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := junk.Add(1)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cp.StreamURL+"/v1/providers", nil)
				req.Header.Set("Authorization", "Bearer "+junkToken(n))
				resp, err := attacker.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusTooManyRequests:
					throttled.Add(1)
				case http.StatusUnauthorized:
					refused.Add(1)
				default:
					otherStatus.Add(1)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // the flood is under way

	// Pods start during the flood and renew every 100ms for 8s.
	var renewals, failed, connectFailed atomic.Int64
	var pw sync.WaitGroup
	deadline := time.Now().Add(8 * time.Second)
	for i := range pods {
		pw.Go(func() {
			c := podClient(i)
			s, err := c.Stream(ctx, protocol.Hello{SidecarID: fmt.Sprintf("sc-%d", i)})
			if err != nil {
				connectFailed.Add(1)
				t.Errorf("pod fn-%d could not open its stream during the flood: %v", i, err)
				return
			}
			defer s.Close()
			if _, err := s.Recv(); err != nil {
				connectFailed.Add(1)
				t.Errorf("pod fn-%d: first message: %v", i, err)
				return
			}
			name := fmt.Sprintf("reg-%d", i)
			if _, _, err := c.PutProvider(ctx, registry.Provider{Namespace: ns, Name: name, Type: "http",
				Endpoints: []registry.Endpoint{{URL: "http://10.0.0.1:80", Ready: true}},
				Lease:     &registry.Lease{TTL: registry.Duration(30 * time.Second)}}); err != nil {
				failed.Add(1)
				t.Errorf("pod fn-%d: register: %v", i, err)
				return
			}
			for time.Now().Before(deadline) {
				renewals.Add(1)
				if _, err := c.RenewProvider(ctx, ns, name, 30*time.Second); err != nil {
					failed.Add(1)
					t.Errorf("pod fn-%d: renew: %v", i, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	pw.Wait()
	close(stop)
	wg.Wait()
	t.Logf("flood: %d junk requests (%d refused 401 after a review, %d throttled 429, %d other); pods: %d connect failures, %d renewals, %d failed",
		junk.Load(), refused.Load(), throttled.Load(), otherStatus.Load(), connectFailed.Load(), renewals.Load(), failed.Load())
	if failed.Load() != 0 || connectFailed.Load() != 0 {
		t.Errorf("%d failed renewals and %d failed connects under the flood, want 0", failed.Load(), connectFailed.Load())
	}
	if otherStatus.Load() != 0 {
		t.Errorf("%d junk requests got neither 401 nor 429", otherStatus.Load())
	}
	if throttled.Load() == 0 {
		t.Errorf("no junk request was throttled: the per-address review budget did not engage")
	}
}
