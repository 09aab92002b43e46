package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"ddi.dev/ddi/internal/controlplane"
	"ddi.dev/ddi/internal/podauth"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/webhook"
)

var setLoggerOnce sync.Once

// SetProcessLoggers points controller-runtime's and client-go's
// process-wide loggers at log; the first call of the process wins (Run
// makes it). A process that uses client-go before Run (a test that opens a
// store first) calls it earlier, so that setting the loggers never races
// with their use.
func SetProcessLoggers(log *slog.Logger) {
	setLoggerOnce.Do(func() {
		lr := logr.FromSlogHandler(log.Handler())
		ctrllog.SetLogger(lr)
		klog.SetLogger(lr)
	})
}

// The rate budget of sidecar authentication (TokenReviews and pod reads),
// apart from the manager's: enough for hundreds of pods starting at once,
// and small enough that it cannot flood the API server.
const (
	authQPS   = 50
	authBurst = 100
)

// Run runs the controller until ctx ends. It returns nil on a clean stop.
//
// It assembles the controller in steps, each of which says what failed:
// the serving certificate, the manager, the injection webhook, the
// Provider store, the control plane, the sidecars' stream listener, the
// reconcilers and the health checks.
func Run(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lr := logr.FromSlogHandler(log.Handler())
	SetProcessLoggers(log)

	cfg, err := restConfig(o)
	if err != nil {
		return err
	}
	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	sc, err := servingCerts(ctx, o, cfg, scheme, log)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	mgr, err := newManager(cfg, scheme, lr, o, sc)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	if err := addWebhook(mgr, cfg, o, sc, log); err != nil {
		return fmt.Errorf("injection webhook: %w", err)
	}
	store := o.Store
	if store == nil {
		store, err = newKubeStore(ctx, mgr, o.Namespace, log)
		if err != nil {
			return err
		}
		// The manager closes the store when it stops; this closes it
		// when Run fails before the manager starts. Close is idempotent.
		defer func() { _ = store.Close() }()
	}
	cp, err := newControlPlane(mgr, cfg, scheme, store, o, sc, log)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	if err := addStreamListener(mgr, cp, o, sc.streamTLS, log); err != nil {
		return fmt.Errorf("control plane listener: %w", err)
	}
	if err := addMetricsListener(mgr, cp, o, log); err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	if err := setupReconcilers(mgr, cp, o, log); err != nil {
		return err
	}
	if err := addHealthChecks(mgr, cp); err != nil {
		return fmt.Errorf("health checks: %w", err)
	}
	log.Info("starting ddi controller", "namespace", o.Namespace, "webhook_port", o.WebhookPort, "stream", o.StreamAddr,
		"stream_tls", sc.streamTLS != nil, "self_managed_certs", sc.certs != nil, "leader_election", o.LeaderElection, "leader_identity", o.LeaderElectionIdentity)
	return mgr.Start(ctx)
}

// serving is the certificate that serves the webhook and the sidecars'
// stream, and how the other steps use it.
type serving struct {
	// certs is the self-managed certificate, or nil.
	certs *webhook.Certs
	// dir is cert-manager's certificate in --webhook-cert-dir, or nil.
	dir *certDir
	// webhook configures the manager's webhook server.
	webhook crwebhook.Options
	// caBundle is the PEM bundle injected sidecars must trust, or nil when
	// the stream is plain HTTP.
	caBundle func() []byte
	// streamTLS serves the sidecars' stream, or is nil for plain HTTP.
	streamTLS *tls.Config
}

// servingCerts readies the one certificate that serves the webhook and the
// sidecars' stream: the self-managed one, or cert-manager's in
// --webhook-cert-dir. It is ready before the manager starts, so the first
// admission call and the first sidecar already find it.
func servingCerts(ctx context.Context, o Options, cfg *rest.Config, scheme *runtime.Scheme, log *slog.Logger) (*serving, error) {
	sc := &serving{webhook: crwebhook.Options{Host: o.WebhookHost, Port: o.WebhookPort}}
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if o.WebhookCertDir != "" {
		sc.webhook.CertDir = o.WebhookCertDir
		dir, err := newCertDir(o.WebhookCertDir, log.With("component", "certs"))
		if err != nil {
			return nil, err
		}
		sc.dir = dir
		getCert, sc.caBundle = dir.GetCertificate, dir.CABundle
	} else {
		certs, err := newCerts(o, cfg, scheme, log)
		if err != nil {
			return nil, err
		}
		if err := certs.Ensure(ctx); err != nil {
			return nil, err
		}
		sc.certs = certs
		getCert, sc.caBundle = certs.GetCertificate, certs.CABundle
	}
	sc.webhook.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = getCert }}
	if o.StreamAddr == "" || o.StreamInsecure {
		// Plain HTTP: the sidecars need no CA.
		sc.caBundle = nil
		return sc, nil
	}
	sc.streamTLS = &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12}
	if host := controlPlaneHost(o.Inject.ControlPlaneURL); host != "" {
		if err := certNames(getCert, host); err != nil {
			log.Warn("the serving certificate does not name the sidecars' control plane host: sidecars will refuse it",
				"host", host, "cert_dir", o.WebhookCertDir, "err", err)
		}
	}
	return sc, nil
}

// newManager returns the controller-runtime manager: its caches, webhook
// server, probes, metrics and leader election.
func newManager(cfg *rest.Config, scheme *runtime.Scheme, lr logr.Logger, o Options, sc *serving) (manager.Manager, error) {
	lock, err := leaseLock(cfg, o)
	if err != nil {
		return nil, err
	}
	return ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 lr,
		WebhookServer:          crwebhook.NewServer(sc.webhook),
		HealthProbeBindAddress: o.HealthAddr,
		// addMetricsListener serves controller-runtime's registry
		// together with the control plane's.
		Metrics:        metricsserver.Options{BindAddress: "0"},
		LeaderElection: o.LeaderElection,
		// A replica that stops (a rollout, a deleted pod) hands the Lease
		// over at once instead of leaving the reconcilers idle until it
		// expires; the process ends when Run returns.
		LeaderElectionReleaseOnCancel:       true,
		LeaderElectionID:                    LeaseName,
		LeaderElectionNamespace:             o.Namespace,
		LeaderElectionResourceLockInterface: lock,
		LeaseDuration:                       &o.LeaseDuration,
		RenewDeadline:                       &o.RenewDeadline,
		RetryPeriod:                         &o.RetryPeriod,
		// Tests and benchmarks run several controllers in one process.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only ddi's own webhook configuration is watched.
			&admissionregistrationv1.MutatingWebhookConfiguration{}: {Field: fields.OneTermEqualSelector("metadata.name", o.WebhookConfigName)},
		}},
		Client: client.Options{Cache: &client.CacheOptions{
			// Secrets and pods are read one at a time, never listed or
			// watched cluster-wide.
			DisableFor: []client.Object{&corev1.Secret{}, &corev1.Pod{}},
		}},
	})
}

// addWebhook registers the Pod injection webhook with the manager, and the
// runnables that keep its certificate and caBundle current.
func addWebhook(mgr manager.Manager, cfg *rest.Config, o Options, sc *serving, log *slog.Logger) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	native := &webhook.ServerVersion{Discovery: dc, Logger: log}
	handler, err := webhook.NewHandler(webhook.Options{
		Config:         o.Inject,
		Namespaces:     webhook.NamespaceCache{Cache: mgr.GetClient(), API: mgr.GetAPIReader()},
		Native:         native.Native,
		ControlPlaneCA: sc.caBundle,
		Events:         mgr.GetEventRecorder("ddi-webhook"),
		Objects:        webhook.APIObjects{Reader: mgr.GetAPIReader()},
		Logger:         log.With("component", "webhook"),
	})
	if err != nil {
		return err
	}
	mgr.GetWebhookServer().Register(webhook.Path, handler)
	if sc.dir != nil {
		if err := mgr.Add(sc.dir); err != nil {
			return fmt.Errorf("certificate directory watch: %w", err)
		}
	}
	if sc.certs != nil {
		if err := mgr.Add(sc.certs); err != nil {
			return fmt.Errorf("certificate rotation: %w", err)
		}
		if err := (&webhook.CABundleReconciler{Client: mgr.GetClient(), Certs: sc.certs, Name: o.WebhookConfigName,
			Logger: log.With("component", "cabundle")}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("caBundle reconciler: %w", err)
		}
	}
	return nil
}

// newControlPlane returns the control plane over store, with sidecar
// authentication, and adds it to the manager on every replica.
//
// With a replica token (replicas.go), the control plane's graph and
// sidecar list show the sidecars of every replica.
func newControlPlane(mgr manager.Manager, cfg *rest.Config, scheme *runtime.Scheme, store registry.Store, o Options, sc *serving, log *slog.Logger) (*controlplane.Server, error) {
	// Sidecar authentication has its own clients and rate budget: a flood
	// of connects cannot slow the reconcilers, nor they the sidecars.
	authCfg := rest.CopyConfig(cfg)
	authCfg.QPS, authCfg.Burst = authQPS, authBurst
	authCS, err := kubernetes.NewForConfig(authCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for sidecar authentication: %w", err)
	}
	authPods, err := client.New(authCfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("pod reader for sidecar authentication: %w", err)
	}
	replicas, replicaSA, err := replicasFor(o, mgr.GetAPIReader(), sc, log.With("component", "replicas"))
	if err != nil {
		return nil, err
	}
	po := podauth.Options{
		TokenReviews: authCS,
		Pods:         authPods,
		Audience:     o.TokenAudience,
		Dependencies: dependencySource(mgr.GetClient()),
		Providers:    store,
		Logger:       log.With("component", "podauth"),
	}
	if replicas != nil {
		po.ReplicaAudience, po.ReplicaServiceAccount = o.ReplicaAudience, replicaSA
	}
	auth, err := podauth.New(po)
	if err != nil {
		return nil, fmt.Errorf("sidecar authentication: %w", err)
	}
	if replicas != nil {
		replicas.Verify = auth.VerifyReplica
		log.Info("merging the sidecars of every replica", "pod", o.PodName, "service", o.ServiceName, "service_account", replicaSA)
	}
	cp, err := controlplane.New(controlplane.Options{
		Store:       store,
		Auth:        auth,
		Secrets:     SecretReader{Reader: mgr.GetAPIReader()},
		Recheck:     o.StreamRecheck,
		SecretPoll:  o.SecretPoll,
		SecretReads: o.SecretReads,
		Replicas:    replicas,
		Logger:      log.With("component", "controlplane"),
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error { return cp.Run(ctx) })); err != nil {
		return nil, err
	}
	return cp, nil
}

// addStreamListener serves the control plane API for sidecars on
// o.StreamAddr, on every replica; with no StreamAddr it does nothing.
func addStreamListener(mgr manager.Manager, cp *controlplane.Server, o Options, streamTLS *tls.Config, log *slog.Logger) error {
	if o.StreamAddr == "" {
		return nil
	}
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		// Every route but health and metrics authorises its caller by
		// pod identity inside the control plane (podauth).
		return serveStream(ctx, o.StreamAddr, cp.Handler(), streamTLS, log, o.StreamListening)
	}))
}

// addMetricsListener serves /metrics on o.MetricsAddr, on every replica:
// controller-runtime's registry (reconcilers, work queues, webhook, client,
// Go and process) and the control plane's ddi_controlplane_* metrics, so
// that one plain-HTTP scrape of the pod's metrics port covers both. The
// control plane API keeps its own /metrics on the stream port.
func addMetricsListener(mgr manager.Manager, cp *controlplane.Server, o Options, log *slog.Logger) error {
	if o.MetricsAddr == "" || o.MetricsAddr == "0" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{ctrlmetrics.Registry, cp.Gatherer()}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		ln, err := net.Listen("tcp", o.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr %s: %w", o.MetricsAddr, err)
		}
		if o.MetricsListening != nil {
			o.MetricsListening(ln.Addr().String())
		}
		log.Info("serving metrics", "addr", ln.Addr().String())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}))
}

// addHealthChecks adds the liveness check and the readiness checks: the
// webhook server has started, and the control plane has listed the store.
func addHealthChecks(mgr manager.Manager, cp *controlplane.Server) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("store", func(*http.Request) error {
		select {
		case <-cp.Ready():
			return nil
		default:
			return errors.New("the provider index has not listed the store yet")
		}
	})
}

// restConfig loads the client configuration: RestConfig, else the
// kubeconfig file, else $KUBECONFIG or ~/.kube/config, else in-cluster.
func restConfig(o Options) (*rest.Config, error) {
	if o.RestConfig != nil {
		return rest.CopyConfig(o.RestConfig), nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig (use --kubeconfig out of cluster): %w", err)
	}
	cfg.UserAgent = "ddi-controller"
	return cfg, nil
}

// NewScheme returns the types the controller reads and writes: the core
// Kubernetes types and ddi's custom resources.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("scheme: Kubernetes types: %w", err)
	}
	if err := addAPIToScheme(s); err != nil {
		return nil, fmt.Errorf("scheme: ddi types: %w", err)
	}
	return s, nil
}

func newCerts(o Options, cfg *rest.Config, scheme *runtime.Scheme, log *slog.Logger) (*webhook.Certs, error) {
	co := webhook.CertOptions{
		Namespace:  o.Namespace,
		SecretName: o.CertSecretName,
		DNSNames:   webhook.ServiceDNSNames(o.ServiceName, o.Namespace),
		Logger:     log.With("component", "certs"),
	}
	for _, h := range o.WebhookCertHosts {
		co.DNSNames, co.IPs = addHost(co.DNSNames, co.IPs, h)
	}
	if o.StreamAddr != "" && !o.StreamInsecure {
		// The sidecars verify the host they dial; by default it is one of
		// the Service's names already.
		co.DNSNames, co.IPs = addHost(co.DNSNames, co.IPs, controlPlaneHost(o.Inject.ControlPlaneURL))
	}
	if o.CertSecretName != "" {
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return nil, fmt.Errorf("client for the certificate secret: %w", err)
		}
		co.Client = c
	}
	return webhook.NewCerts(co)
}

// everyReplica is a manager runnable that runs on every replica, leader or
// not.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

// serveStream serves the control plane API for sidecars on addr until ctx
// ends, then drains it. It serves TLS with tlsConf, plain HTTP when tlsConf
// is nil.
func serveStream(ctx context.Context, addr string, h http.Handler, tlsConf *tls.Config, log *slog.Logger, listening func(string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("control plane listener: %w", err)
	}
	if listening != nil {
		listening(ln.Addr().String())
	}
	log.Info("serving the control plane for sidecars", "addr", ln.Addr().String(), "tls", tlsConf != nil)
	return controlplane.Serve(ctx, ln, h, tlsConf, log.With("component", "stream"))
}
