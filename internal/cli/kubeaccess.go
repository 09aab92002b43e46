//go:build !nokube

package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// The in-cluster control plane, as deploy/ installs it.
const (
	controllerNamespace = "ddi-system"
	controllerSelector  = "app.kubernetes.io/name=ddi,app.kubernetes.io/component=controller"
	controllerPort      = 7470
	// controllerServerName is a name the control plane's certificate
	// carries (webhook.ServiceDNSNames), checked through a port-forward.
	controllerServerName = "ddi-controller." + controllerNamespace + ".svc"
	webhookConfigName    = "ddi-sidecar-injector"
)

// kubeConn is a way to the control plane with a person's Kubernetes
// credentials: the base URL and an HTTP client that presents the bearer
// token the kubeconfig's user presents to the API server.
type kubeConn struct {
	baseURL string
	http    *http.Client
	// via says how, for messages: "port-forward to ddi-system/pod".
	via   string
	close func()
}

// connectKube reads the kubeconfig (--kubeconfig, else $KUBECONFIG, else
// ~/.kube/config; --context, else its current context) and returns a way
// to the control plane with its user's credentials: to url when one is
// given (a control plane the person already reaches, such as their own
// kubectl port-forward), else through a port-forward to a ready controller
// pod in ddi-system, opened with the same credentials.
func connectKube(ctx context.Context, kubeconfig, kubeContext, url, caFile string) (*kubeConn, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, errors.New("no kubeconfig found (looked at --kubeconfig, $KUBECONFIG and ~/.kube/config): give --kubeconfig FILE, or drop --context and --control-plane kube to use a local control plane (`ddi dev`)")
	}
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig: %w (name one with --kubeconfig or KUBECONFIG, and a context with --context)", err)
	}
	if cfg.Impersonate.UserName != "" || len(cfg.Impersonate.Groups) > 0 {
		return nil, errors.New("the kubeconfig's context impersonates another user, which the control plane does not support: use a context that logs in as yourself")
	}
	if cfg.BearerToken == "" && cfg.BearerTokenFile == "" && cfg.ExecProvider == nil && cfg.AuthProvider == nil {
		return nil, errors.New("the kubeconfig's user has no bearer token (it logs in with a client certificate, or not at all), and only the API server can check a client certificate: " +
			"use a context whose user has a token, an exec plugin or an OIDC login (for a service account: kubectl create token NAME)")
	}
	conn := &kubeConn{baseURL: strings.TrimRight(url, "/"), via: "kubeconfig", close: func() {}}
	var roots *x509.CertPool
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--control-plane-ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--control-plane-ca %s: no PEM certificate in it", caFile)
		}
	}
	serverName := ""
	if url == "" {
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
		pod, err := controllerPod(ctx, cs)
		if err != nil {
			return nil, err
		}
		if roots == nil {
			if roots, err = webhookCA(ctx, cs); err != nil {
				return nil, err
			}
		}
		local, stop, err := forward(ctx, cfg, cs, pod)
		if err != nil {
			return nil, err
		}
		conn.baseURL = "https://127.0.0.1:" + strconv.Itoa(local)
		conn.via = "port-forward to " + controllerNamespace + "/" + pod
		conn.close = stop
		serverName = controllerServerName
	}
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}
	if serverName != "" {
		base.Proxy = nil // the port-forward is on loopback
	}
	// The same wrappers client-go puts around its own requests: the
	// bearer token, refreshed by an exec plugin or an OIDC login when it
	// expires.
	rt, err := rest.HTTPWrappersForConfig(cfg, base)
	if err != nil {
		conn.close()
		return nil, fmt.Errorf("kubeconfig credentials: %w", err)
	}
	conn.http = &http.Client{Transport: rt}
	return conn, nil
}

// webhookCA reads the CA that signs the control plane's certificate from
// the caBundle of ddi's MutatingWebhookConfiguration (the controller keeps
// it there, or cert-manager's CA injector does).
func webhookCA(ctx context.Context, cs kubernetes.Interface) (*x509.CertPool, error) {
	hint := "pass --control-plane-ca with the control plane's CA (the caBundle of MutatingWebhookConfiguration " + webhookConfigName +
		", or ca.crt of the certificate Secret in " + controllerNamespace + ")"
	wh, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhookConfigName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the control plane's CA from MutatingWebhookConfiguration %s: %w; %s", webhookConfigName, err, hint)
	}
	pool := x509.NewCertPool()
	for _, w := range wh.Webhooks {
		if pool.AppendCertsFromPEM(w.ClientConfig.CABundle) {
			return pool, nil
		}
	}
	return nil, fmt.Errorf("MutatingWebhookConfiguration %s has no caBundle yet; %s", webhookConfigName, hint)
}

// controllerPod finds a ready controller pod in ddi-system.
func controllerPod(ctx context.Context, cs kubernetes.Interface) (string, error) {
	pods, err := cs.CoreV1().Pods(controllerNamespace).List(ctx, metav1.ListOptions{LabelSelector: controllerSelector})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return "", fmt.Errorf("find the ddi controller: %w; reaching it through your kubeconfig needs get and list on pods and create on pods/portforward in %s (docs/kubernetes.md), or point --control-plane at a control plane you reach otherwise", err, controllerNamespace)
		}
		return "", fmt.Errorf("find the ddi controller in %s: %w", controllerNamespace, err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			return p.Name, nil
		}
	}
	return "", fmt.Errorf("no ready ddi controller pod (%s) in namespace %s of this cluster: install ddi (kubectl apply -k deploy/, docs/kubernetes.md), "+
		"pick another cluster with --context, or run a local control plane with `ddi dev` and drop --kubeconfig and --context", controllerSelector, controllerNamespace)
}

// forward opens a port-forward from a loopback port to the control plane
// port of pod, with the person's credentials (create on pods/portforward
// in ddi-system). It returns the local port and a stop function.
func forward(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, pod string) (int, func(), error) {
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return 0, nil, fmt.Errorf("port-forward transport: %w", err)
	}
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(controllerNamespace).Name(pod).SubResource("portforward")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, req.URL())
	// kubectl's order: WebSockets first, SPDY when the server lacks them.
	if ws, err := portforward.NewSPDYOverWebsocketDialer(req.URL(), cfg); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool { return !apierrors.IsForbidden(err) })
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	var errOut strings.Builder
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(controllerPort)}, stop, ready, io.Discard, &errOut)
	if err != nil {
		return 0, nil, fmt.Errorf("port-forward to %s/%s: %w", controllerNamespace, pod, err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	closeFn := func() {
		close(stop)
		<-done
	}
	select {
	case <-ready:
	case err := <-done:
		if err == nil {
			err = errors.New(strings.TrimSpace(errOut.String()))
		}
		return 0, nil, fmt.Errorf("port-forward to %s/%s: %w (it needs create on pods/portforward in %s)", controllerNamespace, pod, err, controllerNamespace)
	case <-ctx.Done():
		closeFn()
		return 0, nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		closeFn()
		return 0, nil, fmt.Errorf("port-forward to %s/%s: no local port: %v", controllerNamespace, pod, err)
	}
	return int(ports[0].Local), closeFn, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
