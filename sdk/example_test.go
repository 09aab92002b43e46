package ddi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	ddi "ddi.dev/ddi/sdk"
	"ddi.dev/ddi/sdk/dditest"
)

// The examples run against dditest's fake sidecar. In a function, the zero
// Client finds the real sidecar through DDI_ADDR: `var c ddi.Client`.

func ExampleClient_Resolve() {
	sidecar := dditest.NewSidecar(ddi.Binding{
		Name: "db", Provider: "orders-pg", Type: "postgresql", Version: "15.4.0",
		Endpoints: []ddi.Endpoint{{URL: "postgresql://127.0.0.1:5432/orders", Ready: true}},
	})
	defer sidecar.Close()
	c := &ddi.Client{Addr: sidecar.URL}

	b, err := c.Resolve(context.Background(), "db")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Provider, b.Type, b.Host(), b.Port())

	_, err = c.Resolve(context.Background(), "cache")
	fmt.Println(err)
	// Output:
	// orders-pg postgresql 127.0.0.1 5432
	// dependency "cache" is not declared by this function
}

func ExampleClient_Start() {
	sidecar := dditest.NewSidecar(ddi.Binding{
		Name: "greeter", Provider: "greeter-v1", Type: "http",
		Endpoints: []ddi.Endpoint{{URL: "http://127.0.0.1:9001", Ready: true}},
	})
	defer sidecar.Close()
	c := &ddi.Client{Addr: sidecar.URL}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// From here on Resolve answers from memory, kept current by a watch.
	if err := c.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	sidecar.Update("greeter", func(b *ddi.Binding) { b.Provider = "greeter-v2" })
	for {
		b, _ := c.Resolve(ctx, "greeter")
		if b.Provider == "greeter-v2" {
			fmt.Println("now bound to", b.Provider)
			return
		}
		time.Sleep(time.Millisecond)
	}
	// Output: now bound to greeter-v2
}

func ExampleClient_Watch() {
	sidecar := dditest.NewSidecar(ddi.Binding{Name: "greeter", Provider: "greeter-v1", Type: "http"})
	defer sidecar.Close()
	c := &ddi.Client{Addr: sidecar.URL}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := c.Watch(ctx, "greeter")
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := <-events // the current binding
	fmt.Println(ev.Kind, ev.Binding.Provider)

	sidecar.Update("greeter", func(b *ddi.Binding) { b.Provider = "greeter-v2" })
	ev = <-events
	fmt.Println(ev.Kind, ev.Binding.Provider)

	sidecar.Unbind("greeter", "greeter", "no provider named greeter")
	ev = <-events
	fmt.Println(ev.Kind, ev.Unresolved.Reason)
	// Output:
	// binding greeter-v1
	// binding greeter-v2
	// unbound no provider named greeter
}

func ExampleClient_WatchFunc() {
	sidecar := dditest.NewSidecar(ddi.Binding{Name: "greeter", Provider: "greeter-v1", Type: "http"})
	defer sidecar.Close()
	c := &ddi.Client{Addr: sidecar.URL}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_ = c.WatchFunc(ctx, "greeter", func(ev ddi.Event) {
		fmt.Println("greeter is served by", ev.Binding.Provider)
		cancel() // stop after the first event
	})
	// Output: greeter is served by greeter-v1
}

func ExampleClient_Register() {
	sidecar := dditest.NewSidecar()
	defer sidecar.Close()
	c := &ddi.Client{Addr: sidecar.URL}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg, err := c.Register(ctx, "greeter-v3", ddi.ProviderSpec{
		Type:      "http",
		Version:   "3.0.0",
		Endpoints: []string{"http://127.0.0.1:9003"},
		TTL:       30 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("registered", reg.Provider.Name, reg.Provider.Version)

	cancel() // the registration ends with its context
	<-reg.Done()
	fmt.Println("still registered:", len(sidecar.Providers()))
	// Output:
	// registered greeter-v3 3.0.0
	// still registered: 0
}

func ExampleClient_InvokeClient() {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	}))
	defer provider.Close()
	sidecar := dditest.NewSidecar(ddi.Binding{
		Name: "greeter", Provider: "greeter-v1", Type: "http",
		Endpoints: []ddi.Endpoint{{URL: provider.URL, Ready: true}},
	})
	defer sidecar.Close()
	c := &ddi.Client{Addr: sidecar.URL}

	// The host of the URL is the dependency's alias; the sidecar picks the
	// provider's endpoint.
	resp, err := c.InvokeClient().Get("http://greeter/greet")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello from /greet
}

func ExampleClient_Inject() {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "charged")
	}))
	defer provider.Close()
	sidecar := dditest.NewSidecar(ddi.Binding{
		Name: "payments", Provider: "payments-v1", Type: "http",
		Endpoints: []ddi.Endpoint{{URL: provider.URL, Ready: true}},
	})
	defer sidecar.Close()
	c := &ddi.Client{Addr: sidecar.URL}

	var deps struct {
		Payments *http.Client `ddi:"payments"` // through the sidecar
		Direct   *http.Client `ddi:"payments,direct"`
		Addr     string       `ddi:"payments,addr"`
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Inject(ctx, &deps); err != nil {
		fmt.Println(err)
		return
	}
	for _, hc := range []*http.Client{deps.Payments, deps.Direct} {
		resp, err := hc.Post("http://payments/charge", "application/json", nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	fmt.Println(deps.Addr == provider.Listener.Addr().String())
	// Output:
	// charged
	// charged
	// true
}

func ExampleInject_errors() {
	sidecar := dditest.NewSidecar(ddi.Binding{Name: "db", Provider: "orders-pg", Type: "postgresql"})
	defer sidecar.Close()
	c := &ddi.Client{Addr: sidecar.URL}

	var deps struct {
		DB       *http.Client `ddi:"db"`
		Payments *http.Client `ddi:"payments"`
		Clock    time.Time    `ddi:"clock"`
	}
	err := c.Inject(context.Background(), &deps)
	fmt.Println(err)
	// Output:
	// ddi: inject: 3 dependencies failed:
	// 	field DB (alias "db", type *http.Client): dependency "db" is bound to provider "orders-pg" of type "postgresql", but *http.Client takes [http]: binding type does not fit the field
	// 	field Payments (alias "payments", type *http.Client): dependency "payments" is not declared by this function
	// 	field Clock (alias "clock", type time.Time): no factory builds time.Time: register one with ddi.RegisterFactory
}
