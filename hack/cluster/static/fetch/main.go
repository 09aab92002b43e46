// Command fetch is a tiny in-cluster HTTP client for proving the local
// cluster: it GETs each URL given (with -host overriding the Host header),
// prints the status line and body, and exits non-zero if any request fails
// or answers with a status of 400 or more. With -loop it repeats every
// -interval until stopped, which makes it a long-running pod.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	host := flag.String("host", "", "Host header to send")
	timeout := flag.Duration("timeout", 30*time.Second, "time limit per request")
	loop := flag.Bool("loop", false, "repeat until stopped")
	interval := flag.Duration("interval", 5*time.Second, "pause between rounds with -loop")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	client := &http.Client{Timeout: *timeout}
	for {
		failed := false
		for _, u := range flag.Args() {
			if err := get(ctx, client, u, *host); err != nil {
				fmt.Fprintf(os.Stderr, "fetch %s: %v\n", u, err)
				failed = true
			}
		}
		if !*loop {
			if failed {
				os.Exit(1)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(*interval):
		}
	}
}

func get(ctx context.Context, client *http.Client, url, host string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if host != "" {
		req.Host = host
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	fmt.Printf("%s %s (%s)\n%s", url, resp.Status, time.Since(start).Round(time.Millisecond), body)
	if resp.StatusCode >= 400 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}
