.DEFAULT_GOAL := help
GO ?= go

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build ./bin/ddi
	$(GO) build -o bin/ddi ./cmd/ddi

demo: ## run the end-to-end demo
	$(GO) run ./cmd/ddi demo

test: ## install test dependencies and run every test (what CI runs)
	hack/test.sh

unit: ## run the main module's tests without installing anything
	$(GO) test ./...

kube-bins: ## build kube-apiserver, etcd, kube-controller-manager into .cache/
	hack/kube-bins.sh

bench: ## run the sidecar benchmarks (wrk, taskset) and print results
	bench/run.sh

.PHONY: help build demo test unit kube-bins bench
