# reauth: run `make help` for the targets.
GO        ?= go
BIN       := bin
GOFILES    = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')

.PHONY: help build demo test lint fmt bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/reauth and bin/podero-sim
	$(GO) build -o $(BIN)/ ./cmd/...

demo: ## run the whole pipeline against the simulator and a mail catcher
	$(GO) run ./cmd/reauth demo

test: lint ## gofmt and vet checks, then every test with the race detector
	$(GO) test -race -count=1 ./...

lint: ## gofmt and go vet must be clean
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt: ## format the code
	gofmt -w $(GOFILES)

clean: ## remove build output
	rm -rf $(BIN)
