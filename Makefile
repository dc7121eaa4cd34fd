# nixpush — see docs/ for the design. Tests use real Nix: scripts/deps.sh
# installs it (and the other tools) on a fresh Debian machine.
GO ?= go

.PHONY: build test demo bench faults deps fmt-check

build:
	$(GO) build -o bin/nixpush ./cmd/nixpush

deps:
	bash scripts/deps.sh

fmt-check:
	@files="$$(gofmt -l .)"; \
	if [ -n "$$files" ]; then \
		echo "gofmt needed on:" >&2; echo "$$files" >&2; exit 1; \
	fi

test: deps
	$(GO) vet ./...
	@$(MAKE) --no-print-directory fmt-check
	$(GO) test -count=1 -timeout 15m ./...

demo: deps
	bash scripts/demo.sh

# make bench SUITE=wan (or remote, verify, daemon, ..., all; see go run ./tools/bench -h),
# with more flags in FLAGS, e.g. FLAGS="-rtt 20,50,100 -wan-workloads 300,1000,closure,tree"
SUITE ?= copy
FLAGS ?=
bench: deps
	$(GO) run ./tools/bench -suite $(SUITE) $(FLAGS) -write

# Fault injection against real caches (needs root: a tmpfs state dir);
# about 4 minutes; writes docs/reliability.md.
faults: deps
	$(GO) run ./tools/faults -write
