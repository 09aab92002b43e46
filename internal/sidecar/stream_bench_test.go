package sidecar

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkInvokeFirstEvent measures how long a server-sent event takes to
// reach the caller through the sidecar, against the same stream read from
// the provider directly. The provider writes one event, flushes, and ends
// the response 20 ms later: a relay that held the event back until the end
// would show at least 20 ms. Metrics: us-to-first-event (mean), and the
// time to the end of the response.
func BenchmarkInvokeFirstEvent(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, "data: last\n\n")
	}))
	b.Cleanup(backend.Close)
	s := benchSidecar(b, backend.URL)
	for _, bc := range []struct{ name, url string }{
		{"sidecar", s.url + "/v1/invoke/greeter/events"},
		{"direct", backend.URL + "/events"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := benchClient()
			var first time.Duration
			n := 0
			for b.Loop() {
				start := time.Now()
				resp, err := c.Get(bc.url)
				if err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReader(resp.Body)
				if line, err := br.ReadString('\n'); err != nil || line != "data: first\n" {
					b.Fatalf("first line %q, %v", line, err)
				}
				first += time.Since(start)
				n++
				_, _ = io.Copy(io.Discard, br)
				resp.Body.Close()
			}
			b.ReportMetric(float64(first.Microseconds())/float64(n), "us-to-first-event")
		})
	}
}
