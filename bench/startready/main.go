// Command startready measures how long a ddi sidecar takes from process
// start to a 200 from /readyz (its first snapshot loaded), against a
// running control plane. It prints one duration per start and the median.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"time"
)

func main() {
	bin := flag.String("ddi", "ddi", "ddi binary")
	cp := flag.String("control-plane", "http://127.0.0.1:7470", "running control plane")
	n := flag.Int("n", 10, "number of starts")
	dep := flag.String("dep", "greeter=greeter", "dependency of the measured sidecar")
	cpu := flag.String("cpu", "", "pin the sidecar to this CPU with taskset")
	flag.Parse()
	var all []time.Duration
	for i := 0; i < *n; i++ {
		d, err := once(*bin, *cp, *dep, *cpu)
		if err != nil {
			fmt.Fprintln(os.Stderr, "startready:", err)
			os.Exit(1)
		}
		fmt.Printf("start %d: %.2f ms\n", i+1, float64(d.Microseconds())/1000)
		all = append(all, d)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	fmt.Printf("median: %.2f ms\n", float64(all[len(all)/2].Microseconds())/1000)
}

func once(bin, cp, dep, cpu string) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{bin, "--control-plane", cp, "--log-level", "error", "sidecar", "--name", "bench-start", "--dep", dep, "--listen", addr}
	if cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	for time.Since(t0) < 10*time.Second {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(t0), nil
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	return 0, fmt.Errorf("sidecar not ready within 10s")
}
