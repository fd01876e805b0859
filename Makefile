# knit: container networking for Linux.
#   make demo   build, start knitd on its embedded store in a throwaway host
#               namespace, run the seeds' scenario, print who reaches whom, clean up
#   make test   every test: unit, kernel and end-to-end, with the race detector
#               (installs what the tests need first: scripts/test-deps.sh)
#   make bench  benchmarks, side by side with the reference CNI chain

GO      ?= go
BIN     := bin
GOFLAGS ?=

.PHONY: all build demo deps test test-unit bench bench-guard bench-attach bench-ports bench-services bench-policy bench-dns bench-cni clean

all: build

build:
	$(GO) build $(GOFLAGS) -o $(BIN)/knitd ./cmd/knitd
	$(GO) build $(GOFLAGS) -o $(BIN)/knit ./cmd/knit
	$(GO) build $(GOFLAGS) -o $(BIN)/probe ./test/e2e/probe
	# the CNI plugin is exec'd per call: static and stripped starts fastest
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/knit-cni ./cmd/knit-cni

demo: build
	./scripts/demo.sh

# what the tests need (Debian packages, Go modules), installed once
deps:
	./scripts/test-deps.sh

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

test-unit:
	$(GO) test -race -count=1 -short ./...

bench: bench-attach bench-ports bench-services bench-policy bench-dns bench-cni

# the regression guard: HEAD's tree against GUARD_REF (default the commit
# before it), side by side in one run; fails when a figure is over 1.5×
# (attach at 1,000 containers, published port, service endpoint, policy
# change and recompile, DNS answer). GUARD_FLAGS passes more flags.
GUARD_REF ?= HEAD~1
bench-guard:
	$(GO) build -o $(BIN)/bench-guard ./bench/guard
	$(BIN)/bench-guard -ref $(GUARD_REF) $(GUARD_FLAGS)

# attach latency/rate and memory, beside the reference CNI chain (cnibench)
bench-attach: build
	./bench/run.sh

# published ports: one more mapping at 1,000, full sync of 10,000 (the
# reference portmap plugin's per-ADD time is in results/cnibench.txt)
bench-ports:
	mkdir -p results
	$(GO) test -run '^$$' -bench '^Benchmark(AddOneMappingAt1000|AddOneContainerAt1000|FullSync10000|RestartSync10000)$$' -benchtime 20x ./internal/dataplane/ | tee results/ports.txt

# service load balancing at 10,000 services x 10 endpoints: install, one
# endpoint changed, first-packet connect latency, beside a kube-proxy-shaped
# ruleset built in the same throwaway namespaces (the peer's install takes
# minutes); BENCH_SERVICES_FLAGS passes flags (-services, -rounds, ...)
bench-services:
	mkdir -p results $(BIN)
	$(GO) build $(GOFLAGS) -o $(BIN)/knit-svcbench ./bench/services
	$(BIN)/knit-svcbench $(BENCH_SERVICES_FLAGS) | tee results/services.txt

# network policy at 1,000 policies on 1,000 pods: compile and install from
# nothing, one policy changed, TCP connection rate and throughput through a
# bridge without policy and with it (needs iperf3); BENCH_POLICY_FLAGS
# passes flags (-policies, -changes, -traffic-rounds, ...)
bench-policy:
	mkdir -p results $(BIN)
	$(GO) build $(GOFLAGS) -o $(BIN)/knit-polbench ./bench/policy
	$(BIN)/knit-polbench $(BENCH_POLICY_FLAGS) | tee results/policy.txt

# CNI ADD/DEL through libcni beside the reference chain
bench-cni: build
	./bench/cni.sh

# DNS queries per second and latency beside aardvark-dns and dnsmasq
bench-dns: build
	./bench/dns/run.sh

clean:
	rm -rf $(BIN) results
