// Command payments is the tiny HTTP provider the orders example calls
// through ddi: POST /charge {"amount_cents":N} answers
// {"status":"charged","by":NAME}. NAME (flag -name, default payments-v1)
// shows which provider served a call when providers are switched live.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	name := flag.String("name", "payments-v1", "provider name reported in answers")
	addr := flag.String("listen", "127.0.0.1:"+envOr("PORT", "8081"), "address to serve on")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /charge", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			AmountCents int64 `json:"amount_cents"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || in.AmountCents <= 0 {
			http.Error(w, `want {"amount_cents":N} with N > 0`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"status": "charged", "by": *name, "amount_cents": in.AmountCents})
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("%s serving on %s", *name, *addr)
	log.Fatal(srv.ListenAndServe())
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
