# kubectl-emqx — see README.md. `make test` is what CI runs (.ci/run).
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/kubectl-emqx/kubectl-emqx/pkg/version.Version=$(VERSION)
BINARIES := kubectl-emqx emqx-webhook emqx-sim

.PHONY: build unit test lint e2e dist dist-test image webhook-up demo cluster-up cluster-down controlplane bench bench-scale fuzz clean chart-docs monitoring-test chart-lint

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

## unit: fast tests, no cluster
unit:
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@# No Go line over 120 columns (a tab counts 4).
	@out=$$(git ls-files '*.go' | xargs awk '{ gsub(/\t/, "    "); if (length($$0) > 120) print FILENAME ":" FNR }'); \
		if [ -n "$$out" ]; then echo "Go lines over 120 columns (a tab counts 4):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./hack/e2e/...
	$(GO) vet -tags 'e2e scale' ./hack/e2e/...
	$(GO) vet -tags dist ./krew/... ./cmd/emqx-webhook/...
	$(GO) vet -tags monitoring ./hack/monitoring/...
	cd hack/tools && $(GO) vet ./imagetar ./pause
	cd hack/certmanager && $(GO) vet .
	$$(hack/tools.sh)/actionlint .github/workflows/*.yml
	@# Every action pinned by commit, the tag it was read at in a comment; no checkout keeps its token.
	@out=$$(grep -nE '^\s*(- )?uses: ' .github/workflows/*.yml | grep -vE '@[0-9a-f]{40} # v[0-9.]+$$'); \
		if [ -n "$$out" ]; then echo "actions not pinned by commit:"; echo "$$out"; exit 1; fi
	@for f in .github/workflows/*.yml; do n=$$(grep -c 'actions/checkout@' $$f); p=$$(grep -c 'persist-credentials: false' $$f); \
		if [ "$$n" != "$$p" ]; then echo "$$f: a checkout keeps its token (persist-credentials: false)"; exit 1; fi; done

## e2e: end-to-end tests on the local control plane (built and cached on first use, ~20 min cold)
e2e:
	$(GO) test -tags e2e -count=1 -v -timeout 30m ./hack/e2e/...

## dist-test: make dist's artifacts, the krew manifest checked against krew's rules, and the
## plugin installed from its archive and run through the real kubectl
dist-test:
	$(GO) test -tags dist -count=1 -v -timeout 30m ./krew/... ./cmd/emqx-webhook/...

## monitoring-test: the alerts and the dashboard's queries checked by the real promtool (Debian's
## prometheus package, installed by hack/prometheus.sh when missing)
monitoring-test:
	PROMTOOL=$$(hack/prometheus.sh)/promtool $(GO) test -tags monitoring -count=1 ./hack/monitoring/...

## chart-lint: chart-testing's ct lint of the Helm chart (each ci/*-values.yaml scenario, yamllint),
## with negative controls
chart-lint:
	hack/chart-lint.sh

## test: everything CI runs (the README's test command)
test: lint chart-lint unit monitoring-test e2e dist-test

## dist: release archives, checksums and the krew manifest in dist/ (VERSION=v1.2.3 to stamp one)
dist:
	hack/dist.sh $(VERSION)

## image: the emqx-webhook image built without Docker (hack/tools/imagetar): one layer with the
## static binary, user 65532, no shell; dist/emqx-webhook-image.tar for `ctr images import`
## (the release workflow builds it per architecture and pushes it with crane).
IMAGE ?= ghcr.io/kubectl-emqx/emqx-webhook
IMAGE_ARCH ?= amd64
IMAGE_TAR ?= dist/emqx-webhook-image.tar
image:
	@mkdir -p dist/image-$(IMAGE_ARCH)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/image-$(IMAGE_ARCH)/ ./cmd/emqx-webhook
	cd hack/tools && $(GO) run ./imagetar -binary $(CURDIR)/dist/image-$(IMAGE_ARCH)/emqx-webhook -ref $(IMAGE):$(VERSION) -platform linux/$(IMAGE_ARCH) -o $(abspath $(IMAGE_TAR))

## webhook-up: the image on the local cluster's real node, installed with kubectl apply -k
## (TLS=cert-manager: manifests/cert-manager, with cert-manager started beside the cluster)
webhook-up:
	hack/webhook-up.sh

## demo: the whole story on a local cluster (KEEP=1 leaves it running)
demo:
	hack/demo.sh

controlplane:
	hack/controlplane.sh

cluster-up:
	hack/cluster-up.sh

cluster-down:
	hack/cluster-down.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/... ./webhook/observe/ ./webhook/admission/ ./webhook/emqxcache/

# The scale benchmark on the local cluster (kwok + simulator): not part of `make test`.
bench-scale:
	$(GO) test -tags 'e2e scale' -count=1 -v -timeout 40m -run '^TestBenchScale' ./hack/e2e/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./pkg/emqx

## chart-docs: the values table of manifests/helm/emqx-webhook/README.md, from its values.yaml
chart-docs:
	$(GO) run ./hack/chartvalues manifests/helm/emqx-webhook/values.yaml manifests/helm/emqx-webhook/README.md

clean:
	rm -rf bin dist
