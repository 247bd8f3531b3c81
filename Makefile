# jwtauthz build and test entry points. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
BIN       := $(CURDIR)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# A count, not a duration: a duration -fuzztime races Go 1.26's fuzz coordinator and can fail with
# "context deadline exceeded" and no crasher (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 30000x

# Pinned tool versions (installed into ./bin with go install; nothing global).
PROTOC_GEN_GO_VERSION := v1.36.12
GRPCURL_VERSION       := v1.9.3
STATICCHECK_VERSION   := v0.8.2

PROTO_SRC := proto/jwtauthz/config/v1/config.proto

.PHONY: all build test check fmt-check vet lint proto proto-check unit integration fuzz bench tools clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/jwtauthz ./cmd/jwtauthz

## test: everything CI checks: formatting, vet, staticcheck, generated code up to date,
## unit tests with -race, end-to-end tests against the built binary, short fuzzing.
test: check unit integration fuzz deploy-test

check: fmt-check vet lint proto-check

## deploy-test: validate Dockerfile, docker-compose.yaml and envoy/ against their consumers' schemas
## (a nested Go module, so compose-go, k8s.io and istio.io stay out of the service's go.mod).
deploy-test:
	cd envoy/test && $(GO) test -mod=mod -count=1 ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '^proto-gen/' || true); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

lint: $(BIN)/staticcheck
	$(BIN)/staticcheck ./...
	$(BIN)/staticcheck -tags integration ./...

unit:
	$(GO) test -race -count=1 ./...

integration: $(BIN)/grpcurl
	GRPCURL=$(BIN)/grpcurl $(GO) test -tags integration -count=1 ./cmd/jwtauthz/

# One short run per fuzz target: the seed corpus always runs in `unit`; this explores a little.
fuzz:
	@for spec in $$(grep -rho --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' pkg | sort -u | sed 's/^func //'); do \
	  pkg=$$(grep -rl --include='*_test.go' "^func $$spec(" pkg | head -1 | xargs dirname); \
	  echo "fuzz $$spec in ./$$pkg for $(FUZZTIME)"; \
	  $(GO) test -run='^$$' -fuzz="^$$spec$$" -fuzztime=$(FUZZTIME) ./$$pkg; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -cpu 1,2 ./pkg/authz/ ./pkg/token/

## proto: regenerate proto-gen/ from proto/ (needs protoc: apt-get install protobuf-compiler).
proto: $(BIN)/protoc-gen-go
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	PATH="$(BIN):$$PATH" protoc -I proto -I /usr/include --go_out=proto-gen --go_opt=paths=source_relative $(PROTO_SRC)

## proto-check: fail when proto-gen/ is not what proto/ generates (the protoc version line aside).
proto-check: $(BIN)/protoc-gen-go
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	PATH="$(BIN):$$PATH" protoc -I proto -I /usr/include --go_out=$$tmp --go_opt=paths=source_relative $(PROTO_SRC); \
	if ! diff -r -I '^// 	protoc ' $$tmp proto-gen >/dev/null; then \
	  echo "proto-gen/ is stale: run 'make proto' and commit"; diff -r -I '^// 	protoc ' $$tmp proto-gen | head -20; exit 1; fi

tools: $(BIN)/protoc-gen-go $(BIN)/grpcurl $(BIN)/staticcheck

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(BIN)/grpcurl:
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

clean:
	rm -rf $(BIN)
