// Command crireset stops and removes every pod sandbox and container that a
// CRI runtime (the local cluster's containerd) holds, so that the runtime
// tears down their network namespaces, CNI attachments and mounts before
// hack/cluster.sh down stops it. It prints how many it removed.
//
// It is test tooling for this repository, not part of ddi.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "/run/containerd/containerd.sock", "CRI runtime socket path")
	timeout := flag.Duration("timeout", 60*time.Second, "overall time limit")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *endpoint); err != nil {
		fmt.Fprintf(os.Stderr, "crireset: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, endpoint string) error {
	conn, err := grpc.NewClient("unix://"+endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect %s: %w", endpoint, err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)

	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, sb := range sandboxes.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			keep(fmt.Errorf("stop pod sandbox %s (%s/%s): %w", sb.Id, sb.GetMetadata().GetNamespace(), sb.GetMetadata().GetName(), err))
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			keep(fmt.Errorf("remove pod sandbox %s: %w", sb.Id, err))
		}
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range containers.Containers {
		_, _ = rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id, Timeout: 0})
		if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			keep(fmt.Errorf("remove container %s: %w", c.Id, err))
		}
	}
	fmt.Printf("removed %d pod sandboxes, %d leftover containers\n", len(sandboxes.Items), len(containers.Containers))
	return firstErr
}
