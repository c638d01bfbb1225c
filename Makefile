# Entry points for the usual jobs. CI runs .ci/run.
GO ?= go

.PHONY: all test race short fuzz bench compare serve e2e loadbench lint staticcheck cover quickstart ci

all: lint test

test:           ## the README's test command
	$(GO) test ./...

race:           ## every test under the race detector
	$(GO) test -race ./...

short:          ## the quick subset
	$(GO) test -short ./...

fuzz:           ## every fuzz target in turn (FUZZTIME=10m each; default 60s)
	bash fuzz/run $${FUZZTIME:-60s}

bench:          ## benchmarks; see bench/BENCHMARKS.md for how results are recorded
	$(GO) test -run XXX -bench . -benchmem ./bench/ ./store/...

compare:        ## the engine against Redis, PostgreSQL, a map, Pebble key-per-receipt (QUICK=-quick: < 5 min)
	bash bench/run $(QUICK)

serve:          ## the server and its demo page on http://127.0.0.1:8080/
	$(GO) run ./cmd/readreceiptd

e2e:            ## the demo page's end-to-end test in headless Chromium (SHOTS=dir keeps screenshots)
	READRECEIPTD_SCREENSHOTS=$(SHOTS) $(GO) test -count=1 -run E2E -v ./cmd/readreceiptd/

loadbench:      ## HTTP load and event-latency figures of the server
	$(GO) test -run '^$$' -bench 'BenchmarkLoad|BenchmarkEventDelivery' -benchtime 2s ./cmd/readreceiptd/

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
