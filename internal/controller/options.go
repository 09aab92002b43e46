package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"

	"ddi.dev/ddi/internal/inject"
	"ddi.dev/ddi/internal/registry"
)

// Defaults of Options, matching deploy/.
const (
	DefaultNamespace         = "ddi-system"
	DefaultServiceName       = "ddi-controller"
	DefaultWebhookConfigName = "ddi-sidecar-injector"
	DefaultCertSecretName    = "ddi-webhook-certs"
	DefaultWebhookPort       = 9443
	DefaultStreamAddr        = ":7470"
	DefaultHealthAddr        = ":8081"
	DefaultMetricsAddr       = ":8080"
	DefaultTokenAudience     = "ddi"
	DefaultStreamRecheck     = 10 * time.Second
	DefaultSecretPoll        = time.Second
	DefaultSecretReads       = 50.0
	DefaultLeaseDuration     = 15 * time.Second
	DefaultRenewDeadline     = 10 * time.Second
	DefaultRetryPeriod       = 2 * time.Second
	DefaultReplicaTokenFile  = "/var/run/secrets/ddi.dev/replica/token"
	DefaultReplicaAudience   = "ddi-replicas"
	DefaultReplicaTimeout    = 2 * time.Second
	DefaultReplicaPoll       = 3 * time.Second
)

// LeaseName is the coordination.k8s.io Lease in Namespace that leader
// election holds; its holderIdentity names the leader.
const LeaseName = "ddi-controller"

// Options configure Run. DefaultOptions fills every field; AddFlags binds
// the ones a person sets.
type Options struct {
	// Kubeconfig is the kubeconfig file to use out of cluster. Empty
	// means $KUBECONFIG, then ~/.kube/config, then the in-cluster service
	// account.
	Kubeconfig string
	// RestConfig, when set, is used instead of Kubeconfig (tests).
	RestConfig *rest.Config
	// Namespace is the controller's own namespace: the certificate Secret
	// and the leader election lease live there.
	Namespace string
	// ServiceName is the Service in front of the controller; the serving
	// certificate names it.
	ServiceName string
	// WebhookConfigName is the MutatingWebhookConfiguration whose caBundle
	// the controller keeps current.
	WebhookConfigName string
	// WebhookHost and WebhookPort are where the webhook listens (TLS).
	WebhookHost string
	WebhookPort int
	// WebhookCertDir, when set, holds tls.crt and tls.key provided by
	// someone else (cert-manager), served by the webhook and the stream
	// and reloaded when they change, and ca.crt, the CA injected into
	// sidecars: the controller then neither generates certificates nor
	// touches the caBundle.
	WebhookCertDir string
	// WebhookCertHosts are extra DNS names or IPs for the self-managed
	// serving certificate, such as 127.0.0.1 when the API server calls a
	// controller that runs out of cluster.
	WebhookCertHosts []string
	// CertSecretName is the Secret in Namespace holding the self-managed
	// certificates. Empty keeps them in memory (out of cluster).
	CertSecretName string
	// StreamAddr is where the control plane serves sidecars (the snapshot
	// stream and the provider API), over TLS with the webhook's
	// certificate. Empty disables it.
	StreamAddr string
	// StreamInsecure serves StreamAddr over plain HTTP instead, for
	// development only: the sidecars' tokens then cross the network
	// unencrypted. Inject.ControlPlaneURL must then be an http:// URL, and
	// sidecars get no CA.
	StreamInsecure bool
	// HealthAddr serves /healthz and /readyz; "0" disables it.
	HealthAddr string
	// MetricsAddr serves /metrics over plain HTTP: controller-runtime's
	// metrics and the control plane's (ddi_controlplane_*), one scrape
	// for both; "0" disables it.
	MetricsAddr string
	// LeaderElection makes only one replica run the reconcilers; every
	// replica serves the webhook and streams.
	LeaderElection bool
	// LeaderElectionIdentity is this replica's name in the Lease
	// (holderIdentity). Empty: the host name (in a cluster, the pod name)
	// and a random suffix. Replicas need distinct identities.
	LeaderElectionIdentity string
	// LeaseDuration, RenewDeadline and RetryPeriod time leader election:
	// candidates try to take the Lease every RetryPeriod, and may once
	// LeaseDuration has passed since its holder last renewed it; a leader
	// that cannot renew within RenewDeadline stops (and the process exits).
	// Defaults 15s, 10s and 2s.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// Inject is the sidecar the webhook injects.
	Inject inject.Config
	// StreamRecheck is how often an open sidecar stream is checked against
	// its pod (still there, token still valid); a stream whose pod is gone
	// ends within it. Default 10s.
	StreamRecheck time.Duration
	// SecretPoll is how often the Secrets that Providers reference are read
	// again; a change reaches bound sidecars (files and typed clients)
	// within it. The controller never lists or watches Secrets. Default 1s.
	SecretPoll time.Duration
	// SecretReads bounds each replica's Secret reads per second; a poll
	// round of more Secrets than that takes longer than SecretPoll.
	// Default 50.
	SecretReads float64
	// KnativeDiscovery is how often the controller asks the API server
	// whether it serves Knative Services (serving.knative.dev/v1), until
	// it does: then it watches them, so that Providers on Knative
	// Services follow their revisions. 0 asks only at start. Default 30s.
	KnativeDiscovery time.Duration
	// TokenAudience is the audience sidecar tokens must carry; it must
	// equal Inject.TokenAudience.
	TokenAudience string
	// Store replaces the custom resource store (tests, benchmarks). The
	// caller keeps ownership: Run does not close it.
	Store registry.Store
	// Logger receives every log line, controller-runtime's included.
	Logger *slog.Logger
	// StreamListening, when set, is called with the stream listener's
	// address once it is bound (tests listen on port 0).
	StreamListening func(addr string)
	// MetricsListening, when set, is called with the metrics listener's
	// address once it is bound.
	MetricsListening func(addr string)

	// PodName is this replica's name among the others (its pod's, as the
	// EndpointSlices of ServiceName name it). Default $POD_NAME, else the
	// host name.
	PodName string
	// ReplicaTokenFile is this replica's projected service account token
	// of audience ReplicaAudience, which it presents to the other
	// replicas when it asks them for their sidecars (docs/kubernetes.md,
	// "Replicas"). When the file does not exist, GET /v1/graph and GET
	// /v1/sidecars show this replica's sidecars only. Empty turns the
	// merging off.
	ReplicaTokenFile string
	// ReplicaAudience is the audience of the replicas' tokens. Default
	// ddi-replicas.
	ReplicaAudience string
	// ReplicaTimeout bounds the answer of another replica; one that does
	// not answer within it is reported as such. Default 2s.
	ReplicaTimeout time.Duration
	// ReplicaPoll is how often the other replicas are asked again while
	// the graph's event stream (the live page) is open. Default 3s.
	ReplicaPoll time.Duration
	// ReplicaServerName is the name the other replicas' certificate is
	// verified for. Default: the host of Inject.ControlPlaneURL, which
	// the serving certificate names.
	ReplicaServerName string
	// ReplicaDial, when set, dials the other replicas (tests, whose
	// replicas listen where no EndpointSlice may point).
	ReplicaDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DefaultOptions returns the documented defaults: in-cluster, namespace
// from $POD_NAMESPACE or ddi-system, certificates in a Secret.
func DefaultOptions() Options {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = DefaultNamespace
	}
	pod := os.Getenv("POD_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	return Options{
		Namespace:         ns,
		ServiceName:       DefaultServiceName,
		WebhookConfigName: DefaultWebhookConfigName,
		WebhookPort:       DefaultWebhookPort,
		CertSecretName:    DefaultCertSecretName,
		StreamAddr:        DefaultStreamAddr,
		HealthAddr:        DefaultHealthAddr,
		MetricsAddr:       DefaultMetricsAddr,
		LeaderElection:    true,
		LeaseDuration:     DefaultLeaseDuration,
		RenewDeadline:     DefaultRenewDeadline,
		RetryPeriod:       DefaultRetryPeriod,
		Inject:            inject.DefaultConfig(),
		TokenAudience:     DefaultTokenAudience,
		StreamRecheck:     DefaultStreamRecheck,
		SecretPoll:        DefaultSecretPoll,
		SecretReads:       DefaultSecretReads,
		KnativeDiscovery:  DefaultKnativeDiscovery,
		PodName:           pod,
		ReplicaTokenFile:  DefaultReplicaTokenFile,
		ReplicaAudience:   DefaultReplicaAudience,
		ReplicaTimeout:    DefaultReplicaTimeout,
		ReplicaPoll:       DefaultReplicaPoll,
	}
}

// AddFlags binds the options a person sets on the command line.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file for running out of cluster (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "the controller's own namespace (default $POD_NAMESPACE, else "+DefaultNamespace+")")
	fs.StringVar(&o.ServiceName, "service-name", o.ServiceName, "Service in front of the controller, named in the webhook certificate")
	fs.StringVar(&o.WebhookConfigName, "webhook-configuration", o.WebhookConfigName, "MutatingWebhookConfiguration whose caBundle the controller keeps current")
	fs.StringVar(&o.WebhookHost, "webhook-host", o.WebhookHost, "address the webhook listens on (empty: all)")
	fs.IntVar(&o.WebhookPort, "webhook-port", o.WebhookPort, "port of the webhook's TLS listener")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", o.WebhookCertDir, "directory with tls.crt, tls.key and ca.crt from cert-manager, for the webhook and the stream; disables the self-managed certificate and caBundle")
	fs.StringSliceVar(&o.WebhookCertHosts, "webhook-cert-host", o.WebhookCertHosts, "extra DNS name or IP in the self-managed certificate; repeatable (out of cluster: 127.0.0.1)")
	fs.StringVar(&o.CertSecretName, "cert-secret", o.CertSecretName, "Secret in --namespace for the self-managed certificates; empty keeps them in memory")
	fs.StringVar(&o.StreamAddr, "stream-addr", o.StreamAddr, "address of the control plane API for sidecars (snapshot stream, registrations), served over TLS with the webhook's certificate")
	fs.BoolVar(&o.StreamInsecure, "stream-insecure", o.StreamInsecure, "serve --stream-addr over plain HTTP (development only: pod tokens cross the network unencrypted; needs an http:// --sidecar-control-plane)")
	fs.StringVar(&o.HealthAddr, "health-addr", o.HealthAddr, `address of /healthz and /readyz ("0" disables)`)
	fs.StringVar(&o.MetricsAddr, "metrics-addr", o.MetricsAddr, `address of /metrics, controller-runtime's and the control plane's metrics over plain HTTP ("0" disables)`)
	fs.BoolVar(&o.LeaderElection, "leader-elect", o.LeaderElection, "elect one replica to run the reconcilers")
	fs.StringVar(&o.LeaderElectionIdentity, "leader-elect-identity", o.LeaderElectionIdentity, "this replica's holderIdentity in the leader election Lease (default: host name and a random suffix)")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", o.LeaseDuration, "how long after its holder's last renewal another replica may take the leader election Lease")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", o.RenewDeadline, "how long the leader keeps trying to renew the Lease before it stops")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", o.RetryPeriod, "how often replicas try to take or renew the Lease")
	fs.StringVar(&o.Inject.Image, "sidecar-image", o.Inject.Image, "image of the injected sidecar")
	fs.StringVar(&o.Inject.ControlPlaneURL, "sidecar-control-plane", o.Inject.ControlPlaneURL, "control plane URL the injected sidecars use; https unless --stream-insecure (its host joins the self-managed certificate)")
	fs.StringVar(&o.Inject.LogLevel, "sidecar-log-level", o.Inject.LogLevel, "log level of the injected sidecars")
	fs.DurationVar(&o.StreamRecheck, "stream-recheck", o.StreamRecheck, "how often an open sidecar stream is checked against its pod and token; a deleted pod's stream ends within it")
	fs.DurationVar(&o.SecretPoll, "secret-poll", o.SecretPoll, "how often Secrets named by Providers' secretRef are read again; a change reaches bound sidecars within it (0 turns it off)")
	fs.Float64Var(&o.SecretReads, "secret-reads", o.SecretReads, "at most this many Secret reads per second per replica; more referenced Secrets than --secret-poll allows stretch a poll round")
	fs.DurationVar(&o.KnativeDiscovery, "knative-discovery", o.KnativeDiscovery, "until Knative Serving is installed, how often to ask the API server whether it is; then Knative Services are watched (0 asks only at start)")
	fs.StringVar(&o.TokenAudience, "token-audience", o.TokenAudience, "audience of the sidecars' projected service-account tokens")
	fs.StringVar(&o.PodName, "pod-name", o.PodName, "this replica's pod name, as the EndpointSlices of --service-name name it (default $POD_NAME, else the host name)")
	fs.StringVar(&o.ReplicaTokenFile, "replica-token-file", o.ReplicaTokenFile, "projected service-account token this replica presents to the other replicas to merge their sidecars into the graph and status (missing file: this replica's sidecars only; empty: off)")
	fs.StringVar(&o.ReplicaAudience, "replica-token-audience", o.ReplicaAudience, "audience of the replicas' tokens")
	fs.DurationVar(&o.ReplicaTimeout, "replica-timeout", o.ReplicaTimeout, "how long another replica may take to answer for its sidecars before it is reported as not answering")
	fs.DurationVar(&o.ReplicaPoll, "replica-poll", o.ReplicaPoll, "how often the other replicas are asked again while the graph's event stream (the live page) is open")
}

// Validate reports every problem of o, each naming its flag.
func (o *Options) Validate() error {
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("--namespace is empty"))
	}
	if o.WebhookPort < 1 || o.WebhookPort > 65535 {
		errs = append(errs, fmt.Errorf("--webhook-port %d is not a port number", o.WebhookPort))
	}
	if o.WebhookCertDir == "" && o.WebhookConfigName == "" {
		errs = append(errs, errors.New("--webhook-configuration is empty: the self-managed certificate needs a configuration to put its caBundle in"))
	}
	if o.StreamAddr != "" {
		if _, _, err := net.SplitHostPort(o.StreamAddr); err != nil {
			errs = append(errs, fmt.Errorf("--stream-addr %q is not host:port", o.StreamAddr))
		}
		// A scheme the stream does not speak fails every sidecar.
		if u, err := url.Parse(o.Inject.ControlPlaneURL); err == nil {
			switch {
			case o.StreamInsecure && u.Scheme == "https":
				errs = append(errs, fmt.Errorf("--stream-insecure serves plain HTTP, but --sidecar-control-plane %q is https: sidecars could not connect; give an http:// URL", o.Inject.ControlPlaneURL))
			case !o.StreamInsecure && u.Scheme == "http":
				errs = append(errs, fmt.Errorf("--sidecar-control-plane %q is plain HTTP, but the stream is served over TLS: use https:// (or --stream-insecure for development)", o.Inject.ControlPlaneURL))
			}
		}
	}
	if o.LeaderElection {
		switch {
		case o.LeaseDuration <= 0 || o.RenewDeadline <= 0 || o.RetryPeriod <= 0:
			errs = append(errs, fmt.Errorf("--leader-elect-lease-duration %s, --leader-elect-renew-deadline %s and --leader-elect-retry-period %s must all be positive",
				o.LeaseDuration, o.RenewDeadline, o.RetryPeriod))
		case o.LeaseDuration <= o.RenewDeadline:
			errs = append(errs, fmt.Errorf("--leader-elect-lease-duration %s must be longer than --leader-elect-renew-deadline %s: another replica could take the Lease while the leader still acts",
				o.LeaseDuration, o.RenewDeadline))
		case o.RenewDeadline <= time.Duration(leaderelection.JitterFactor*float64(o.RetryPeriod)):
			errs = append(errs, fmt.Errorf("--leader-elect-renew-deadline %s must be longer than %g times --leader-elect-retry-period %s: the leader would not get a retry in",
				o.RenewDeadline, leaderelection.JitterFactor, o.RetryPeriod))
		}
	}
	if o.KnativeDiscovery < 0 {
		errs = append(errs, fmt.Errorf("--knative-discovery %s is negative", o.KnativeDiscovery))
	}
	if o.TokenAudience == "" {
		errs = append(errs, errors.New("--token-audience is empty"))
	}
	if o.ReplicaTokenFile != "" {
		switch {
		case o.PodName == "":
			errs = append(errs, errors.New("--pod-name is empty (and so are $POD_NAME and the host name): the replicas could not tell themselves apart; set it, or --replica-token-file= to turn merging off"))
		case o.ReplicaAudience == "" || o.ReplicaAudience == o.TokenAudience:
			errs = append(errs, fmt.Errorf("--replica-token-audience %q must be set and differ from --token-audience %q: a sidecar's token must never pass for a replica's", o.ReplicaAudience, o.TokenAudience))
		case o.ReplicaTimeout <= 0 || o.ReplicaPoll <= 0:
			errs = append(errs, fmt.Errorf("--replica-timeout %s and --replica-poll %s must be positive", o.ReplicaTimeout, o.ReplicaPoll))
		}
	}
	if o.Inject.TokenAudience != "" && o.Inject.TokenAudience != o.TokenAudience {
		errs = append(errs, fmt.Errorf("the injected sidecars' token audience %q differs from --token-audience %q: sidecars could not authenticate", o.Inject.TokenAudience, o.TokenAudience))
	}
	if err := o.Inject.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("sidecar: %w", err))
	}
	return errors.Join(errs...)
}
