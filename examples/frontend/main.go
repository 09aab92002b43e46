// Command frontend is an example function with one dependency, "greeter"
// (declared in its ddi.dev/dependencies annotation or with ddi run --dep).
// It never names greeter's address: GET / invokes greeter through the ddi
// sidecar; GET /direct calls greeter's bound address directly (to measure
// what the sidecar adds); GET /bindings shows the Service Binding files
// the sidecar projected into this container.
package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	ddi "ddi.dev/ddi/sdk"
)

// deps is filled by ddi.Inject: an *http.Client aimed at the greeter
// through the sidecar, and one that goes straight to its bound address.
type deps struct {
	Greeter       *http.Client `ddi:"greeter"`
	GreeterDirect *http.Client `ddi:"greeter,direct"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var d deps
	// Lazy: the function starts even before greeter is bound; calls then
	// fail with a clear error until it is.
	if err := ddi.Inject(ctx, &d, ddi.Lazy()); err != nil {
		log.Printf("inject: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { relay(w, r, d.Greeter) })
	mux.HandleFunc("GET /direct", func(w http.ResponseWriter, r *http.Request) { relay(w, r, d.GreeterDirect) })
	mux.HandleFunc("GET /bindings", func(w http.ResponseWriter, r *http.Request) {
		files := map[string]string{}
		root := os.Getenv("SERVICE_BINDING_ROOT")
		_ = filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			hidden := path != root && e.Name()[0] == '.'
			if e.IsDir() {
				if hidden { // the ..data versions behind the key symlinks
					return filepath.SkipDir
				}
				return nil
			}
			if hidden {
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			if filepath.Base(rel) == "password" {
				files[rel] = "(hidden)"
				return nil
			}
			b, _ := os.ReadFile(path)
			files[rel] = string(b)
			return nil
		})
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"root": root, "files": files})
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("frontend listening on :%s", port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// relay calls greeter and copies its answer. ?delay=DURATION (at most 30s)
// waits first: test/e2e deletes the pod while such requests are in flight
// and expects their calls through the sidecar to succeed.
func relay(w http.ResponseWriter, r *http.Request, c *http.Client) {
	if v := r.URL.Query().Get("delay"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 30*time.Second {
			http.Error(w, "delay: want a duration up to 30s, such as 2s", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if c == nil {
		http.Error(w, "greeter is not injected yet", http.StatusServiceUnavailable)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://greeter/", nil)
	if tp := r.Header.Get("traceparent"); tp != "" {
		req.Header.Set("traceparent", tp)
	}
	resp, err := c.Do(req)
	if err != nil {
		http.Error(w, "greeter: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}
