// Command greeter is an example provider: an HTTP function that answers
// with a greeting naming its version. It runs as a Knative Service (a
// Provider object points at it) or locally under `ddi run`. With
// REGISTER_AS set it also registers itself at run time through its ddi
// sidecar, at its pod address, for as long as it runs.
package main

import (
	"context"
	"encoding/json"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	ddi "ddi.dev/ddi/sdk"
)

func main() {
	// First, what the binding root held when the process started: with
	// ddi's ordered or native sidecar the bindings are there already
	// (test/e2e checks this line on every cold start).
	if root := os.Getenv("SERVICE_BINDING_ROOT"); root != "" {
		var names []string
		if entries, err := os.ReadDir(root); err == nil {
			for _, e := range entries {
				if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					names = append(names, e.Name())
				}
			}
		}
		log.Printf("bindings at start: [%s]", strings.Join(names, " "))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	port := env("PORT", "8080")
	version := env("GREETER_VERSION", "1.0.0")
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"greeting": "hello from greeter " + version,
			"version":  version,
			"revision": os.Getenv("K_REVISION"),
			"pod":      host,
		})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	if name := os.Getenv("REGISTER_AS"); name != "" {
		go register(ctx, name, version, port)
	}
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("greeter %s listening on :%s", version, port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// register announces this instance as provider name through the sidecar
// until ctx ends; the sidecar renews the lease, and on Kubernetes the
// registration is owned by the pod, so it goes with it.
func register(ctx context.Context, name, version, port string) {
	var c ddi.Client
	if err := c.WaitReady(ctx); err != nil {
		log.Printf("register %s: sidecar not ready: %v", name, err)
		return
	}
	ip := env("POD_IP", podIP())
	reg, err := c.Register(ctx, name, ddi.ProviderSpec{Type: "http", Version: version,
		Endpoints: []string{"http://" + net.JoinHostPort(ip, port)}})
	if err != nil {
		log.Printf("register %s: %v", name, err)
		return
	}
	log.Printf("registered as provider %s at %s:%s", name, ip, port)
	<-reg.Done()
}

func podIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
