// Command kingress is a small KIngress implementation for the local cluster
// that hack/cluster.sh runs, where no Envoy-based ingress can be had.
//
// It watches networking.internal.knative.dev Ingress objects of its class,
// routes HTTP requests by Host (then path prefix and headers) to the splits'
// Services, weighting by percent and adding the headers the Ingress asks for
// (the activator needs Knative-Serving-Revision and -Namespace), and marks
// each Ingress Ready with its load balancer address once it serves it.
//
// It serves two listeners: -public (loopback, ExternalIP rules only, for
// curl from this machine) and -internal (the bridge address, every rule, for
// pods; Knative points each Route's placeholder Service at -lb-ip port 80).
// Backends are resolved from Endpoints, so it needs no kube-proxy.
//
// It is test tooling for this repository, not part of ddi.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/networking/pkg/apis/networking"
	netclientset "knative.dev/networking/pkg/client/clientset/versioned"
	netinformers "knative.dev/networking/pkg/client/informers/externalversions"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "kingress: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	kubeconfig string
	class      string
	public     string
	internal   string
	lbIP       string
	logLevel   string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fl := flag.NewFlagSet("kingress", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&c.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	fl.StringVar(&c.class, "class", "kingress.ddi.dev", "ingress class (networking.knative.dev/ingress.class) to serve")
	fl.StringVar(&c.public, "public", "127.0.0.1:31080", "listen address for ExternalIP rules")
	fl.StringVar(&c.internal, "internal", "", "listen address for all rules, reachable from pods (empty: none)")
	fl.StringVar(&c.lbIP, "lb-ip", "", "IP written to Ingress status; pods reach it on port 80 (default: -internal's host)")
	fl.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fl.Parse(args); err != nil {
		return c, err
	}
	if c.lbIP == "" && c.internal != "" {
		host, _, err := net.SplitHostPort(c.internal)
		if err != nil {
			return c, fmt.Errorf("-internal %q: %w", c.internal, err)
		}
		c.lbIP = host
	}
	if c.lbIP == "" {
		return c, errors.New("-lb-ip or -internal is required")
	}
	if net.ParseIP(c.lbIP) == nil {
		return c, fmt.Errorf("-lb-ip %q is not an IP address", c.lbIP)
	}
	return c, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	rc, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	rc.UserAgent = "ddi-kingress"
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	netc, err := netclientset.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("knative networking client: %w", err)
	}

	kf := kubeinformers.NewSharedInformerFactory(kube, 10*time.Minute)
	nf := netinformers.NewSharedInformerFactory(netc, 10*time.Minute)
	svcInf := kf.Core().V1().Services()
	epInf := kf.Core().V1().Endpoints()
	ingInf := nf.Networking().V1alpha1().Ingresses()

	r := &reconciler{
		log:     log,
		class:   cfg.class,
		lbIP:    cfg.lbIP,
		client:  netc.NetworkingV1alpha1(),
		lister:  ingInf.Lister(),
		trigger: make(chan struct{}, 1),
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.kick() },
		UpdateFunc: func(any, any) { r.kick() },
		DeleteFunc: func(any) { r.kick() },
	}
	if _, err := ingInf.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watch ingresses: %w", err)
	}
	_ = svcInf.Informer()
	_ = epInf.Informer()
	kf.Start(ctx.Done())
	nf.Start(ctx.Done())
	for typ, ok := range kf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("sync %v cache", typ)
		}
	}
	for typ, ok := range nf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("sync %v cache", typ)
		}
	}

	var servers []*http.Server
	addrs := []struct {
		addr   string
		public bool
	}{{cfg.public, true}}
	if cfg.internal != "" {
		addrs = append(addrs, struct {
			addr   string
			public bool
		}{cfg.internal, false})
	}
	errc := make(chan error, len(addrs))
	for _, a := range addrs {
		if a.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		protocols := new(http.Protocols)
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
		srv := &http.Server{
			Handler:           newProxy(log, a.public, &r.table, svcInf.Lister(), epInf.Lister()),
			Protocols:         protocols,
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		servers = append(servers, srv)
		log.Info("serving", "addr", ln.Addr().String(), "public", a.public)
		go func() { errc <- srv.Serve(ln) }()
	}

	var wg sync.WaitGroup
	wg.Go(func() { r.loop(ctx) })
	r.kick()

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shutdown)
	}
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// classOf returns the ingress class an Ingress asks for.
func classOf(annotations map[string]string) string {
	return annotations[networking.IngressClassAnnotationKey]
}
