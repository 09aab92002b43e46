package sidecar

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"ddi.dev/ddi/internal/registry"
)

// grpcProvider is a real grpc-go server that answers with its name.
type grpcProvider struct {
	testpb.UnimplementedTestServiceServer
	name  string
	calls atomic.Int64
	srv   *grpc.Server
	url   string
}

func newGRPCProvider(t *testing.T, name string) *grpcProvider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &grpcProvider{name: name, srv: grpc.NewServer(), url: "http://" + ln.Addr().String()}
	testpb.RegisterTestServiceServer(p.srv, p)
	go p.srv.Serve(ln)
	t.Cleanup(p.srv.Stop)
	return p
}

func (p *grpcProvider) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	p.calls.Add(1)
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("ddi-dependency")) != 0 {
		return nil, status.Error(codes.Internal, "the sidecar forwarded ddi-dependency")
	}
	return &testpb.SimpleResponse{Username: p.name}, nil
}

func (p *grpcProvider) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	p.calls.Add(1)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		body := append([]byte(p.name+": "), req.GetPayload().GetBody()...)
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
}

func grpcBinding(revision int64, urls ...string) registry.Binding {
	b := greeterBinding(urls...)
	b.Type, b.Revision = "grpc", revision
	return b
}

// TestInvokeGRPC calls a gRPC provider through the sidecar with a real
// grpc-go client that knows only the sidecar's address and the dependency
// name (metadata ddi-dependency): unary and bidirectional streaming calls,
// clear statuses for a missing or unknown name, and a switch of the
// binding to another provider under load with zero failed calls.
func TestInvokeGRPC(t *testing.T) {
	a, b := newGRPCProvider(t, "a"), newGRPCProvider(t, "b")
	f := newFakeCP(t)
	ts := startConnected(t, f, testConfig(f), []registry.Binding{grpcBinding(1, a.url)}, nil)
	cc, err := grpc.NewClient(strings.TrimPrefix(ts.url, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testpb.NewTestServiceClient(cc)
	greeter := metadata.AppendToOutgoingContext(t.Context(), "ddi-dependency", "greeter")

	t.Run("unary", func(t *testing.T) {
		resp, err := client.UnaryCall(greeter, &testpb.SimpleRequest{})
		if err != nil || resp.Username != "a" {
			t.Fatalf("UnaryCall = %v, %v; want the answer of provider a", resp, err)
		}
	})

	t.Run("bidirectional stream", func(t *testing.T) {
		stream, err := client.FullDuplexCall(greeter)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{"one", "two", "three"} {
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv() // each answer before the next message: a relay that buffered would hang
			if err != nil || string(resp.GetPayload().GetBody()) != "a: "+msg {
				t.Fatalf("stream answer = %v, %v; want \"a: %s\"", resp, err, msg)
			}
		}
		stream.CloseSend()
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Errorf("end of stream = %v, want EOF", err)
		}
	})

	t.Run("names", func(t *testing.T) {
		for _, tt := range []struct {
			ctx  context.Context
			want codes.Code
		}{
			{t.Context(), codes.InvalidArgument},
			{metadata.AppendToOutgoingContext(t.Context(), "ddi-dependency", "nope"), codes.NotFound},
		} {
			_, err := client.UnaryCall(tt.ctx, &testpb.SimpleRequest{})
			if st, _ := status.FromError(err); st.Code() != tt.want || st.Message() == "" {
				t.Errorf("UnaryCall = %v, want %v with a message", err, tt.want)
			}
		}
	})

	t.Run("provider switch under load", func(t *testing.T) {
		var (
			wg     sync.WaitGroup
			stop   atomic.Bool
			calls  atomic.Int64
			failed atomic.Int64
			first  atomic.Value
		)
		for range 4 {
			wg.Go(func() {
				for !stop.Load() {
					ctx, cancel := context.WithTimeout(greeter, 5*time.Second)
					_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
					cancel()
					calls.Add(1)
					if err != nil {
						failed.Add(1)
						first.CompareAndSwap(nil, err.Error())
					}
				}
			})
		}
		waitFor(t, "calls to a", func() bool { return calls.Load() > 50 })
		f.push(t, 2, []registry.Binding{grpcBinding(2, b.url)}, nil)
		waitFor(t, "calls to b", func() bool { return b.calls.Load() > 50 })
		beforeStop := a.calls.Load()
		a.srv.GracefulStop() // the old provider leaves once its calls are done
		n := calls.Load()
		waitFor(t, "calls after a stopped", func() bool { return calls.Load() > n+50 })
		stop.Store(true)
		wg.Wait()
		if failed.Load() != 0 {
			t.Errorf("%d of %d calls failed across the switch; first: %v", failed.Load(), calls.Load(), first.Load())
		}
		if a.calls.Load() != beforeStop {
			t.Errorf("provider a got %d calls after it stopped", a.calls.Load()-beforeStop)
		}
		t.Logf("%d calls, a %d, b %d", calls.Load(), a.calls.Load(), b.calls.Load())
	})
}
