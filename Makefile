# knit: container networking for Linux.
#   make demo   build, start knitd on its embedded store in a throwaway host
#               namespace, run the seeds' scenario, print who reaches whom, clean up
#   make test   every test: unit, kernel and end-to-end, with the race detector
#   make bench  benchmarks, side by side with the reference CNI chain

GO      ?= go
BIN     := bin
GOFLAGS ?=

.PHONY: all build demo test test-unit bench clean

all: build

build:
	$(GO) build $(GOFLAGS) -o $(BIN)/knitd ./cmd/knitd
	$(GO) build $(GOFLAGS) -o $(BIN)/knit ./cmd/knit
	$(GO) build $(GOFLAGS) -o $(BIN)/probe ./test/e2e/probe

demo: build
	./scripts/demo.sh

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

test-unit:
	$(GO) test -race -count=1 -short ./...

bench: build
	./bench/run.sh

clean:
	rm -rf $(BIN) results
