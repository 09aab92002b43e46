package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"ddi.dev/ddi/internal/controller"
	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/registry"
	"ddi.dev/ddi/internal/registry/kube"
	"ddi.dev/ddi/internal/webhook"
)

// KubeVersion is the Kubernetes release whose binaries the tests use.
const KubeVersion = "v1.37.2"

// Options configure RunControlPlane. The zero value runs the API server,
// etcd and the ddi controller with envtest's webhook certificate.
type Options struct {
	// SelfManagedCerts makes the controller serve its own certificate
	// (kept in Secret ddi-system/ddi-webhook-certs) and put its CA into the
	// webhook configuration's caBundle, as in a real installation, instead
	// of serving envtest's certificate.
	SelfManagedCerts bool
	// ControllerManager also starts kube-controller-manager (Deployments,
	// ReplicaSets, garbage collection, namespace deletion).
	ControllerManager bool
	// SkipCRDs leaves ddi's CRDs (deploy/crd) out, for tests that need
	// none. The controller's store needs them: use it with NoController.
	SkipCRDs bool
	// NoController starts no ddi controller: the webhook configuration is
	// then not installed either.
	NoController bool
	// Inject adjusts the injector configuration.
	Inject func(*inject.Config)
	// Controller adjusts the controller's options last.
	Controller func(*controller.Options)
	// As is the user the controller, and the store opened for it, act as
	// through impersonation, such as
	// "system:serviceaccount:ddi-system:ddi-controller": then they have
	// only the permissions Setup grants that user. Empty: an
	// administrator (system:masters).
	As string
	// Setup runs once the API server is up, before the controller starts:
	// to grant the controller its RBAC, say.
	Setup func(cp *ControlPlane)
	// Store replaces the registry store the controller uses. Default: the
	// Kubernetes custom resource store (internal/registry/kube).
	Store registry.Store
	// Logger receives the controller's logs. Default: the test log at
	// warn level (set DDI_TEST_LOG=debug for more).
	Logger *slog.Logger
	// Replicas is how many controllers run against the API server, as the
	// pods of deploy/'s Deployment do. Default 1. Each replica has its own
	// stream listener (StreamURLs), webhook listener and Provider store
	// (unless Store is set: then they share it); only the first one's
	// webhook is in the webhook configuration. With more than one they
	// elect a leader through Lease ddi-system/ddi-controller, replica i as
	// ReplicaIdentity(i), on shorter timings than the defaults (8s lease,
	// 6s renew deadline, 1s retry; Controller may change them). They also
	// find each other as deploy/'s do (docs/kubernetes.md, "Replicas"):
	// replica i is the pod ReplicaIdentity(i) at ReplicaAddress(i) in an
	// EndpointSlice of Service ddi-controller, dialled at its stream
	// listener, and presents a token of service account
	// ddi-system/ddi-controller for audience ddi-replicas
	// (ReplicaTokens).
	Replicas int
}

// ReplicaAddress is the pod address of replica i in the EndpointSlices
// kubetest writes: the API server refuses loopback addresses there, so
// the replicas dial these through a mapping to their listeners.
func ReplicaAddress(i int) string { return fmt.Sprintf("10.250.0.%d", i+1) }

// ReplicaServiceAccount is the service account whose tokens the replicas
// present to each other, as deploy/'s controller pods do.
const ReplicaServiceAccount = "ddi-controller"

// ReplicaIdentity is replica i's holderIdentity in the leader election
// Lease.
func ReplicaIdentity(i int) string { return fmt.Sprintf("kubetest-replica-%d", i) }

// ControlPlane is a running test cluster.
type ControlPlane struct {
	Env *envtest.Environment
	// Config is an admin (system:masters) client configuration.
	Config    *rest.Config
	Client    client.Client
	Clientset kubernetes.Interface
	// Kubeconfig is the path of an admin kubeconfig file.
	Kubeconfig string
	// WebhookURL is the https URL the API server calls for admission.
	WebhookURL string
	// StreamURL is the control plane API for sidecars, https ("" with
	// NoController): the first replica's.
	StreamURL string
	// StreamURLs are every replica's StreamURL, in replica order.
	StreamURLs []string
	// StreamCA is the PEM bundle that verifies StreamURL's certificate:
	// what the webhook injects into sidecars as DDI_CONTROL_PLANE_CA.
	StreamCA []byte
	// Store is the registry store the controller serves (the first
	// replica's).
	Store registry.Store
	// ReplicaTokens are, with more than one replica, the token files
	// each replica presents to the others, in replica order.
	ReplicaTokens []string

	stops []func()
	// replicaAddrs maps ReplicaAddress(i):7470 to replica i's stream
	// listener.
	replicaMu    sync.Mutex
	replicaAddrs map[string]string
}

// AssetsDir returns the folder with kube-apiserver, etcd and kubectl:
// $KUBEBUILDER_ASSETS, else <repo>/.cache/kube/v1.37.2.
func AssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), ".cache", "kube", KubeVersion)
}

// RepoRoot is the root of the ddi repository.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// RequireAssets fails the test when the Kubernetes binaries are missing.
func RequireAssets(t testing.TB, names ...string) string {
	t.Helper()
	dir := AssetsDir()
	if len(names) == 0 {
		names = []string{"kube-apiserver", "etcd"}
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Fatalf("kubetest: %s is missing from %s: build the Kubernetes binaries with hack/kube-bins.sh (they are cached; KUBEBUILDER_ASSETS=$(hack/kube-bins.sh | tail -1) points elsewhere)", n, dir)
		}
	}
	return dir
}

// Namespace names used by the harness.
const SystemNamespace = "ddi-system"

// RunControlPlane starts a control plane for t and stops it when t ends.
func RunControlPlane(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	assets := RequireAssets(t)
	if opts.SkipCRDs && !opts.NoController {
		t.Fatal("kubetest: the controller's Provider store needs the CRDs: SkipCRDs requires NoController")
	}
	if opts.ControllerManager {
		RequireAssets(t, "kube-controller-manager")
	}
	root := RepoRoot()
	env := &envtest.Environment{
		BinaryAssetsDirectory:   assets,
		ControlPlaneStopTimeout: 30 * time.Second,
	}
	if crds := filepath.Join(root, "deploy", "crd"); !opts.SkipCRDs && dirHasYAML(crds) {
		env.CRDDirectoryPaths = []string{crds}
		env.ErrorIfCRDPathMissing = true
	}
	if !opts.NoController {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(root, "deploy", "webhook", "mutatingwebhookconfiguration.yaml")},
		}
	}
	// envtest turns the ServiceAccount admission plugin off; a real
	// cluster runs it before any webhook, so pods reach ddi with
	// serviceAccountName set. Turn it back on: namespaces then need their
	// "default" ServiceAccount (Namespace creates it, or kube-controller-
	// manager's serviceaccount-controller does).
	env.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins")
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		t.Fatalf("kubetest: start API server and etcd: %v", err)
	}
	t.Logf("kubetest: API server %s up in %s", cfg.Host, time.Since(start).Round(time.Millisecond))
	cp := &ControlPlane{Env: env, Config: cfg}

	// Cleanups run last-in first-out: env.Stop runs after everything
	// registered below it.
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("kubetest: stop API server: %v", err)
		}
	})

	cp.Clientset = kubernetes.NewForConfigOrDie(cfg)
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	cp.Client, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("kubetest: client: %v", err)
	}
	cp.Kubeconfig = writeAdminKubeconfig(t, env)

	for _, ns := range []string{SystemNamespace, "kube-system", "default"} {
		cp.Namespace(t, ns, nil)
	}

	if opts.ControllerManager {
		startControllerManager(t, cp)
	}
	if opts.Setup != nil {
		opts.Setup(cp)
	}
	if !opts.NoController {
		startController(t, cp, opts)
	}
	return cp
}

// Namespace creates a namespace with labels (or leaves an existing one
// alone) and its "default" ServiceAccount.
func (cp *ControlPlane) Namespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := cp.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create namespace %s: %v", name, err)
	}
	cp.ServiceAccount(t, name, "default")
}

// ServiceAccount creates a ServiceAccount unless it exists.
func (cp *ControlPlane) ServiceAccount(t testing.TB, namespace, name string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := cp.Clientset.CoreV1().ServiceAccounts(namespace).Create(context.Background(), sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create service account %s/%s: %v", namespace, name, err)
	}
}

func dirHasYAML(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	return len(m) > 0
}

func writeAdminKubeconfig(t testing.TB, env *envtest.Environment) string {
	t.Helper()
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "kubetest-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("kubetest: add admin user: %v", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("kubetest: admin kubeconfig: %v", err)
	}
	path := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testLogger writes to the test log.
func testLogger(t testing.TB) *slog.Logger {
	lvl := slog.LevelWarn
	if v := os.Getenv("DDI_TEST_LOG"); v != "" {
		_ = lvl.UnmarshalText([]byte(v))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startController(t testing.TB, cp *ControlPlane, opts Options) {
	t.Helper()
	wo := &cp.Env.WebhookInstallOptions
	n := max(1, opts.Replicas)
	if n > 1 {
		setupReplicas(t, cp, n)
	}
	for i := range n {
		url, store := startReplica(t, cp, opts, i, n)
		cp.StreamURLs = append(cp.StreamURLs, url)
		if i == 0 {
			cp.StreamURL, cp.Store = url, store
		}
	}
	cp.WebhookURL = fmt.Sprintf("https://%s:%d%s", wo.LocalServingHost, wo.LocalServingPort, webhook.Path)
	waitWebhook(t, cp, opts.SelfManagedCerts)
	if opts.SelfManagedCerts {
		var sec corev1.Secret
		if err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: SystemNamespace, Name: controller.DefaultCertSecretName}, &sec); err != nil {
			t.Fatalf("kubetest: read the certificate secret: %v", err)
		}
		cp.StreamCA = sec.Data["ca.crt"]
	}
}

// startReplica starts replica i of n and returns its stream URL and store.
func startReplica(t testing.TB, cp *ControlPlane, opts Options, i, n int) (string, registry.Store) {
	t.Helper()
	wo := &cp.Env.WebhookInstallOptions
	log := opts.Logger
	if log == nil {
		log = testLogger(t)
	}
	if n > 1 {
		log = log.With("replica", i)
	}
	// Before the store below uses client-go: controller.Run would set
	// client-go's process-wide logger while the store already logs.
	controller.SetProcessLoggers(log)
	cfg := cp.Config
	if opts.As != "" {
		cfg = rest.CopyConfig(cfg)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: opts.As}
	}
	store := opts.Store
	if store == nil {
		// The custom resource store, opened here so that tests can read it.
		c, err := kube.NewClient(cfg)
		if err != nil {
			t.Fatalf("kubetest: store client: %v", err)
		}
		s, err := kube.New(context.Background(), c, kube.Options{SecretNamespace: SystemNamespace, Logger: log.With("component", "store")})
		if err != nil {
			t.Fatalf("kubetest: open the Provider store: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		store = s
	}
	co := controller.DefaultOptions()
	co.RestConfig = cfg
	co.Namespace = SystemNamespace
	co.WebhookHost = wo.LocalServingHost
	co.WebhookPort = wo.LocalServingPort
	if i > 0 {
		// Only the first replica is in the webhook configuration.
		co.WebhookPort = freePort(t, wo.LocalServingHost)
	}
	co.HealthAddr = "0"
	co.MetricsAddr = "0"
	co.LeaderElection = n > 1
	co.LeaderElectionIdentity = ReplicaIdentity(i)
	co.LeaseDuration, co.RenewDeadline, co.RetryPeriod = 8*time.Second, 6*time.Second, time.Second
	co.StreamAddr = "127.0.0.1:0"
	co.Store = store
	co.Logger = log
	if opts.Inject != nil {
		opts.Inject(&co.Inject)
	}
	if opts.SelfManagedCerts {
		co.WebhookCertHosts = []string{wo.LocalServingHost, "localhost"}
	} else {
		// envtest's certificate stands in for cert-manager's, which comes
		// with the CA that signed it in ca.crt.
		co.WebhookCertDir = wo.LocalServingCertDir
		if err := os.WriteFile(filepath.Join(wo.LocalServingCertDir, "ca.crt"), wo.LocalServingCAData, 0o600); err != nil {
			t.Fatalf("kubetest: write ca.crt: %v", err)
		}
		cp.StreamCA = wo.LocalServingCAData
	}
	co.PodName = ReplicaIdentity(i)
	co.ReplicaTokenFile = ""
	if n > 1 {
		co.ReplicaTokenFile = cp.ReplicaTokens[i]
		co.ReplicaServerName = "localhost" // named by both certificates
		co.ReplicaDial = cp.dialReplica
	}
	if opts.Controller != nil {
		opts.Controller(&co)
	}
	streamAddr := make(chan string, 1)
	co.StreamListening = func(addr string) {
		if n > 1 {
			cp.replicaMu.Lock()
			cp.replicaAddrs[net.JoinHostPort(ReplicaAddress(i), "7470")] = addr
			cp.replicaMu.Unlock()
		}
		streamAddr <- addr
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	failed := make(chan struct{})
	go func() {
		defer wg.Done()
		runErr = controller.Run(ctx, co)
		close(failed)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if runErr != nil && !errors.Is(runErr, context.Canceled) {
				t.Errorf("kubetest: controller (replica %d): %v", i, runErr)
			}
		})
	}
	cp.stops = append(cp.stops, stop)
	// The controller stops before the API server (registered earlier, so
	// cleaned up later): its webhook server must be gone before envtest
	// removes the certificate directory.
	t.Cleanup(stop)
	select {
	case addr := <-streamAddr:
		return "https://" + addr, store
	case <-failed:
		t.Fatalf("kubetest: the controller (replica %d) stopped: %v", i, runErr)
	case <-time.After(60 * time.Second):
		t.Fatalf("kubetest: the controller (replica %d) did not start within 60s", i)
	}
	return "", nil
}

// setupReplicas readies what lets n replicas find and trust each other:
// their ServiceAccount, a token of it for audience ddi-replicas per
// replica (as deploy/ projects one into each pod), and one EndpointSlice
// of Service ddi-controller per replica, ready, naming its pod.
func setupReplicas(t testing.TB, cp *ControlPlane, n int) {
	t.Helper()
	ctx := context.Background()
	cp.replicaAddrs = make(map[string]string)
	cp.ServiceAccount(t, SystemNamespace, ReplicaServiceAccount)
	for i := range n {
		tr, err := cp.Clientset.CoreV1().ServiceAccounts(SystemNamespace).CreateToken(ctx, ReplicaServiceAccount, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{controller.DefaultReplicaAudience}, ExpirationSeconds: ptr.To[int64](3600)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("kubetest: token of %s/%s for replica %d: %v", SystemNamespace, ReplicaServiceAccount, i, err)
		}
		path := filepath.Join(t.TempDir(), "replica-token")
		if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		cp.ReplicaTokens = append(cp.ReplicaTokens, path)
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: fmt.Sprintf("%s-%d", controller.DefaultServiceName, i), Labels: map[string]string{
				discoveryv1.LabelServiceName: controller.DefaultServiceName, discoveryv1.LabelManagedBy: "kubetest"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ReplicaAddress(i)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: SystemNamespace, Name: ReplicaIdentity(i)}}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To("stream"), Port: ptr.To[int32](7470), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
		if err := cp.Client.Create(ctx, es); err != nil {
			t.Fatalf("kubetest: EndpointSlice of replica %d: %v", i, err)
		}
	}
}

// dialReplica dials a replica's pod address (ReplicaAddress) at its
// stream listener.
func (cp *ControlPlane) dialReplica(ctx context.Context, network, addr string) (net.Conn, error) {
	cp.replicaMu.Lock()
	to, ok := cp.replicaAddrs[addr]
	cp.replicaMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("kubetest: no replica at %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

// StopReplica stops controller replica i and waits until it has ended:
// its streams end and its listeners close. A leader that stops does not
// give up the Lease: another replica takes it once it expires. Stopping
// replica 0 stops the webhook the API server calls (pods in namespaces
// that reach it can then not be created). Stopping a replica twice does
// nothing.
func (cp *ControlPlane) StopReplica(t testing.TB, i int) {
	t.Helper()
	if i < 0 || i >= len(cp.stops) {
		t.Fatalf("kubetest: no controller replica %d (%d running)", i, len(cp.stops))
	}
	cp.stops[i]()
}

// Leader returns the replica named by the leader election Lease, or -1
// when there is no Lease (yet) or it names none. A stopped leader stays
// named until another replica takes the Lease.
func (cp *ControlPlane) Leader(t testing.TB) int {
	t.Helper()
	var lease coordinationv1.Lease
	err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: SystemNamespace, Name: controller.LeaseName}, &lease)
	if apierrors.IsNotFound(err) {
		return -1
	}
	if err != nil {
		t.Fatalf("kubetest: read the leader election Lease: %v", err)
	}
	for i := range cp.stops {
		if id := lease.Spec.HolderIdentity; id != nil && *id == ReplicaIdentity(i) {
			return i
		}
	}
	return -1
}

// freePort returns a TCP port on host that nothing listens on now.
func freePort(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("kubetest: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StreamHTTP returns an HTTP client for StreamURL that trusts StreamCA
// only, as an injected sidecar does.
func (cp *ControlPlane) StreamHTTP(t testing.TB) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cp.StreamCA) {
		t.Fatalf("kubetest: StreamCA holds no PEM certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// waitWebhook waits until the API server calls the webhook successfully: a
// dry-run pod in a probe namespace comes back injected.
func waitWebhook(t testing.TB, cp *ControlPlane, selfManaged bool) {
	t.Helper()
	ctx := context.Background()
	ns := "kubetest-probe"
	cp.Namespace(t, ns, map[string]string{inject.KeyInject: inject.NamespaceEnabled})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "probe:1"}}}}
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		got, err := cp.Clientset.CoreV1().Pods(ns).Create(ctx, pod.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && got.Annotations[inject.AnnotationInjectedVersion] != "" {
			if selfManaged {
				var mwc admissionregistrationv1.MutatingWebhookConfiguration
				if err := cp.Client.Get(ctx, client.ObjectKey{Name: controller.DefaultWebhookConfigName}, &mwc); err == nil {
					t.Logf("kubetest: webhook answers with the self-managed certificate (caBundle %d bytes)", len(mwc.Webhooks[0].ClientConfig.CABundle))
				}
			}
			return
		}
		if err == nil {
			last = errors.New("the probe pod came back without the sidecar")
		} else {
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("kubetest: the API server could not call the ddi webhook within 60s: %v", last)
}

// startControllerManager runs kube-controller-manager against the test API
// server with the controllers the tests rely on.
func startControllerManager(t testing.TB, cp *ControlPlane) {
	t.Helper()
	bin := filepath.Join(AssetsDir(), "kube-controller-manager")
	cmd := exec.Command(bin,
		"--kubeconfig="+cp.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller",
		"--concurrent-gc-syncs=5",
		"-v=1",
	)
	logPath := filepath.Join(t.TempDir(), "kube-controller-manager.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("kubetest: start kube-controller-manager: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = f.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("kube-controller-manager log (tail):\n%s", tail(string(b), 4000))
			}
		}
	})
	t.Logf("kubetest: kube-controller-manager pid %d, log %s", cmd.Process.Pid, logPath)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
