// Command genericapp stands in for the Service Binding conformance suite's
// generic test application (github.com/servicebinding/conformance,
// resources/apps/generic-test-app: lighttpd and a few shell scripts), whose
// image is on a registry this project cannot reach. It keeps that image's
// HTTP contract on port 8080:
//
//	GET /env         the environment at start-up, as one JSON object
//	GET /env/NAME    that variable's value as a JSON string, 404 when unset
//	GET /PATH        the file /PATH of the container, 404 when absent
//
// hack/servicebinding-conformance.sh packs it under the image name the suite
// uses, ghcr.io/servicebinding/conformance/generic-test-app:main.
//
// On SIGTERM it keeps serving for 5 s (GENERICAPP_DRAIN) before it stops, as
// a well-behaved server does while its endpoint is taken out of the
// Service: a connection the node's service rules still send to it in that
// window is answered instead of dialling a vanished pod address until TCP
// gives up (over a minute), which made a rollout cost the suite's polling
// steps minutes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"
)

func main() {
	addr := ":8080"
	if a := os.Getenv("GENERICAPP_ADDR"); a != "" {
		addr = a
	}
	drain := 5 * time.Second
	if d, err := time.ParseDuration(os.Getenv("GENERICAPP_DRAIN")); err == nil {
		drain = d
	}
	srv := &http.Server{Addr: addr, Handler: handler(environ()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		time.Sleep(drain)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// environ is the environment at start-up, as the original's start script
// writes it to /tmp/env.json before it starts the server.
func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func handler(env map[string]string) http.Handler {
	all, err := json.Marshal(env)
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		switch {
		case p == "/env":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(all)
		case strings.HasPrefix(p, "/env/"):
			v, ok := env[strings.TrimPrefix(p, "/env/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			b, _ := json.Marshal(v)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(append(b, '\n'))
		default:
			serveFile(w, r, p)
		}
	})
}

// serveFile answers with the file's bytes as they are, like lighttpd's
// static files: no directory listings, no index files, no ranges needed.
func serveFile(w http.ResponseWriter, r *http.Request, p string) {
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist), err != nil && isDir(p):
		http.NotFound(w, r)
	case err != nil:
		http.Error(w, err.Error(), http.StatusForbidden)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b)
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
