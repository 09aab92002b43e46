// Command clusterdns is the local cluster's DNS server: a small,
// authoritative-only server for the cluster domain that hack/cluster.sh runs
// on the bridge address, as kubelet's clusterDNS. It answers
//
//	<service>.<namespace>.svc.<domain>            A: cluster IP, or ready endpoints of a headless Service; CNAME for ExternalName
//	<hostname>.<service>.<namespace>.svc.<domain> A: that endpoint of a headless Service
//	<a-b-c-d>.<namespace>.pod.<domain>            A: a.b.c.d
//
// from Services and EndpointSlices. Every other name gets NXDOMAIN: the
// local cluster has no upstream, so pods never send DNS queries off the
// machine. It is test tooling for this repository, not part of ddi.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "clusterdns: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fl := flag.NewFlagSet("clusterdns", flag.ContinueOnError)
	fl.SetOutput(stderr)
	kubeconfig := fl.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	listen := fl.String("listen", "127.0.0.1:53", "UDP and TCP listen address")
	domain := fl.String("domain", "cluster.local", "cluster domain")
	ttl := fl.Uint("ttl", 5, "TTL of answers, seconds")
	logLevel := fl.String("log-level", "info", "debug, info, warn or error")
	probe := fl.String("probe", "", "instead of serving, resolve this name at -listen and exit (health check)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *probe != "" {
		return probeServer(ctx, *listen, *probe)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	rc.UserAgent = "ddi-clusterdns"
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	kf := kubeinformers.NewSharedInformerFactory(kube, 10*time.Minute)
	svc := kf.Core().V1().Services()
	eps := kf.Discovery().V1().EndpointSlices()
	_, _ = svc.Informer(), eps.Informer()
	kf.Start(ctx.Done())
	for typ, ok := range kf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("sync %v cache", typ)
		}
	}

	z := &zone{domain: *domain, ttl: uint32(*ttl), services: svc.Lister(), slices: eps.Lister()}
	s := &server{log: log, zone: z}

	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return fmt.Errorf("listen udp: %w", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		pc.Close()
		return fmt.Errorf("listen tcp: %w", err)
	}
	log.Info("serving", "addr", *listen, "domain", *domain)

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() { errc <- s.serveUDP(pc) })
	wg.Go(func() { errc <- s.serveTCP(ln) })
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	pc.Close()
	ln.Close()
	wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// probeServer resolves name through the server at addr, as a pod would.
func probeServer(ctx context.Context, addr, name string) error {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ips, err := r.LookupHost(ctx, name)
	if err != nil {
		return fmt.Errorf("probe %s at %s: %w", name, addr, err)
	}
	fmt.Printf("%s %v\n", name, ips)
	return nil
}
