// Command fasthttpproxy is the design bench/invoke.sh measures against the
// sidecar's own relay: a reverse proxy built on valyala/fasthttp (its
// Server and HostClient, kept-alive upstream connections), forwarding
// every request to one upstream. It lives in its own module so that ddi
// itself does not depend on fasthttp.
package main

import (
	"flag"
	"log"
	"net"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "upstream host:port")
	flag.Parse()
	client := &fasthttp.HostClient{Addr: *upstream, MaxConns: 1024}
	handler := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		req.Header.Del("Connection")
		req.Header.Add("X-Forwarded-For", ctx.RemoteIP().String())
		req.Header.Set("X-Forwarded-Proto", "http")
		if err := client.Do(req, &ctx.Response); err != nil {
			ctx.Error("bad gateway: "+err.Error(), fasthttp.StatusBadGateway)
		}
		ctx.Response.Header.Del("Connection")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler, StreamRequestBody: true}
	log.Fatal(srv.Serve(ln))
}
