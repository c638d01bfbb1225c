# Entry points for the usual jobs. CI runs .ci/run.
GO ?= go

.PHONY: all test race short fuzz bench lint staticcheck cover quickstart ci

all: lint test

test:           ## the README's test command
	$(GO) test ./...

race:           ## every test under the race detector
	$(GO) test -race ./...

short:          ## the quick subset
	$(GO) test -short ./...

fuzz:           ## model-based fuzzing of the engine (FUZZTIME=5m)
	$(GO) test -run XXX -fuzz FuzzEngine -fuzztime $${FUZZTIME:-1m} ./fuzz/

bench:          ## benchmarks; see bench/BENCHMARKS.md for how results are recorded
	$(GO) test -run XXX -bench . -benchmem ./bench/ ./store/...

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...

staticcheck:    ## extra lint; fetched through the module proxy, not a dependency
	GOFLAGS=-mod=mod $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -checks all,-ST1000,-ST1003 ./...

cover:
	$(GO) test -coverprofile=cover.out ./... && $(GO) tool cover -func=cover.out | tail -1

quickstart:
	$(GO) run ./examples/quickstart

ci:
	bash .ci/run
