# kubectl-emqx — see README.md. `make test` is what CI runs (.ci/run).
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/kubectl-emqx/kubectl-emqx/pkg/version.Version=$(VERSION)
BINARIES := emqx-sim

.PHONY: build unit test lint bench fuzz clean

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

## unit: fast tests, no cluster
unit:
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test: everything CI runs (the README's test command)
test: lint unit

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./pkg/emqx

clean:
	rm -rf bin dist
