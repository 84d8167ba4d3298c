# reauth: run `make help` for the targets.
GO        ?= go
BIN       := bin
GOFILES    = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')

.PHONY: help build demo test deps rules chaos bench lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/reauth and bin/podero-sim
	$(GO) build -o $(BIN)/ ./cmd/...

demo: ## run the whole pipeline against the simulator and a mail catcher
	$(GO) run ./cmd/reauth demo

test: lint deps rules ## gofmt, vet and staticcheck, the alert rules' promtool tests, then every test with the race detector
	$(GO) test -race -count=1 ./...

deps: ## install what the tests need besides Go and Postgres: Debian's chromium and prometheus (promtool), when missing
	@sh .ci/ensure-chromium
	@sh .ci/ensure-prometheus

rules: deps ## check deploy/prometheus/alerts.yaml and run its unit tests (alerts_test.yaml) with promtool
	promtool check rules deploy/prometheus/alerts.yaml
	cd deploy/prometheus && promtool test rules alerts_test.yaml

CHAOS_REQUESTS       ?= 2000
RATE_CHECK_SECONDS   ?= 60
BUDGET_CHECK_SECONDS ?= 60
chaos: ## the chaos test at full size, and the one-minute shared rate-limit and budget checks (make test runs small ones)
	E2E_NORACE=1 CHAOS_REQUESTS=$(CHAOS_REQUESTS) RATE_CHECK_SECONDS=$(RATE_CHECK_SECONDS) BUDGET_CHECK_SECONDS=$(BUDGET_CHECK_SECONDS) \
		$(GO) test -count=1 -timeout 30m -v -run 'TestChaos|TestSharedRateLimit|TestRateBudget|TestRetryAfterHoldsEveryProcess' ./e2e

BENCH_QUICK ?=
bench: build ## the benchmark (docs/PERFORMANCE.md); BENCH_QUICK=1 for the small run
	BENCH_QUICK=$(BENCH_QUICK) $(BIN)/reauth-bench

lint: ## gofmt, go vet and staticcheck (pinned in go.mod's tool block) must be clean
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fmt: ## format the code
	gofmt -w $(GOFILES)

clean: ## remove build output
	rm -rf $(BIN)
