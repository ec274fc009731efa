# dbaudit-gateway: the two commands of the README are `make demo` and `make test`.
# Each installs what it needs (scripts/install-deps.sh is idempotent), builds, and runs.

SWIFT ?= swift
VENV := .venv
PYTHON := $(VENV)/bin/python
BIN_DEBUG := .build/debug/dbaudit-gateway
# SwiftPM refuses an import of a module the target does not depend on (scripts/check-imports.py,
# run by `make lint`, is stricter: direct dependencies only, and none declared but unused).
# Warnings are errors for our targets (Package.swift: treatAllWarnings).
SWIFT_BUILD_FLAGS := --explicit-target-dependency-import-check error
PREFIX ?= /usr/local

.PHONY: fuzz all deps test-deps build build-release lint test unit-test sanitize e2e-test test-sentinel-long test-cluster-long sdk-python-test sdk-node-test demo check-config clean bench bench-quick install soak

all: build

deps:
	@scripts/install-deps.sh

# What the tests need besides: systemd tools, strace, testssl.sh, Chromium and its driver,
# Debian's TypeScript for the Node SDK.
test-deps:
	@INSTALL_TEST_DEPS=1 scripts/install-deps.sh

build: deps
	$(SWIFT) build $(SWIFT_BUILD_FLAGS)

# The formatter ships with the toolchain; its rules are in .swift-format (swift-nio's style).
lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Fuzz/Sources Package.swift
	scripts/check-imports.py

build-release: deps
	$(SWIFT) build -c release $(SWIFT_BUILD_FLAGS)

$(VENV)/.installed: Tests/e2e/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r Tests/e2e/requirements.txt
	touch $@

# Unit and handler tests (swift test), then the end-to-end tests against the real binary
# (the SDKs' own included: Tests/e2e/test_sdk_*.py), then the Python SDK's own tests.
test: test-deps lint build $(VENV)/.installed
	$(SWIFT) test $(SWIFT_BUILD_FLAGS)
	GATEWAY_BIN=$(BIN_DEBUG) $(PYTHON) -m pytest -q Tests/e2e
	$(PYTHON) -m pytest -q sdks/python/tests

# The Python SDK alone: unit tests on a stub, mypy --strict, installs into fresh venvs.
sdk-python-test: $(VENV)/.installed
	$(PYTHON) -m pytest -q sdks/python/tests

# The Node SDK alone: unit tests (node --test) and its types (tsc). `make test` runs these
# too, with npm pack and the end-to-end runs, through Tests/e2e/test_sdk_node.py.
sdk-node-test: test-deps
	cd sdks/node && node --test test/*.test.mjs && tsc --noEmit -p test/types/tsconfig.json

unit-test: build
	$(SWIFT) test $(SWIFT_BUILD_FLAGS)

# The Swift test suite under AddressSanitizer (LeakSanitizer included), then under
# ThreadSanitizer, each in its own build directory so the debug build is left alone. Each is
# a full build of the package plus a run (README, "Tests", has the times); not part of
# `make test`. Reports in third-party code that are known false positives or harness leaks
# are suppressed in scripts/sanitizers/*.supp, each entry with its reason; any other report
# fails the target.
# Instrumented code runs several times slower: the tests' upper wall-clock bounds are widened
# (GATEWAY_TEST_TIME_SCALE, default 5 here; set it to override). TLSMemoryTests (an RSS bound)
# skips itself under AddressSanitizer, whose allocator keeps freed memory.
SANITIZER_SUPPRESSIONS := $(CURDIR)/scripts/sanitizers
SANITIZE_TIME_SCALE := $(or $(GATEWAY_TEST_TIME_SCALE),5)
sanitize: deps
	GATEWAY_TEST_TIME_SCALE=$(SANITIZE_TIME_SCALE) \
	LSAN_OPTIONS=suppressions=$(SANITIZER_SUPPRESSIONS)/lsan.supp:print_suppressions=1 \
		$(SWIFT) test --sanitize=address --scratch-path .build/asan $(SWIFT_BUILD_FLAGS)
	GATEWAY_TEST_TIME_SCALE=$(SANITIZE_TIME_SCALE) \
	TSAN_OPTIONS=suppressions=$(SANITIZER_SUPPRESSIONS)/tsan.supp:print_suppressions=1 \
		$(SWIFT) test --sanitize=thread --scratch-path .build/tsan $(SWIFT_BUILD_FLAGS)

e2e-test: test-deps build $(VENV)/.installed
	GATEWAY_BIN=$(BIN_DEBUG) $(PYTHON) -m pytest -q Tests/e2e

# libFuzzer targets, one per parser (docs/fuzzing.md): builds with -sanitize=fuzzer,address in
# .build/fuzz, then runs each target FUZZ_SECONDS (default 60); FUZZ_TARGET=name runs one.
# CI runs it with FUZZ_SECONDS=20 after `make test`.
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGET=$(FUZZ_TARGET) FUZZ_SKIP="$(FUZZ_SKIP)" SWIFT=$(SWIFT) scripts/fuzz.sh

# Sentinel failover under load, the long version: three failovers in a row (the short one,
# one failover, is part of `make test`). Prints the figures.
test-sentinel-long: test-deps build $(VENV)/.installed
	GATEWAY_SENTINEL_LONG=1 GATEWAY_BIN=$(BIN_DEBUG) $(PYTHON) -m pytest -q -s Tests/e2e/test_redis_sentinel.py

# Redis Cluster, the long version: three primaries with one replica each (the short one,
# three primaries, is part of `make test`). Prints the figures.
test-cluster-long: test-deps build $(VENV)/.installed
	GATEWAY_CLUSTER_LONG=1 GATEWAY_BIN=$(BIN_DEBUG) $(PYTHON) -m pytest -q -s Tests/e2e/test_redis_cluster.py

# The soak (soak/README.md): two gateways sharing Redis, a recording upstream, a JWKS
# provider, labelled load and faults on a schedule for SOAK_SECONDS (at least 60); fails when
# an invariant does not hold. The report goes to soak/results/<date>-<seconds>s/. `make test`
# runs its 60-second version (Tests/e2e/test_soak.py).
SOAK_SECONDS ?= 600
soak: test-deps build $(VENV)/.installed
	GATEWAY_BIN=$(BIN_DEBUG) $(PYTHON) soak/soak.py --seconds $(SOAK_SECONDS)

# The gateway on embedded defaults with a built-in echo upstream; prints what to try.
demo: build
	$(BIN_DEBUG) demo

# Checks the shipped example; it reads the API-key pepper from /etc/dbaudit-gateway/api-key-pepper
# (README, "First real run", step 3, says how to make it).
check-config: build
	$(BIN_DEBUG) check-config --config gateway.conf.example

# Benchmark: the release build side by side with nginx and HAProxy on loopback, pinned to
# cores, interleaved runs, ratios inside one run, the issue-15 targets table, syscalls
# (strace) and instructions (valgrind's callgrind) per request; each run's summary is appended
# to bench/results/history.jsonl (bench/README.md). Not part of `make test`.
# `make bench BENCH_ARGS=--quick` (or `make bench-quick`) takes about 6 minutes.
bench:
	@scripts/install-deps.sh nginx haproxy redis-server wrk strace valgrind linux-perf gcc binutils
	$(SWIFT) build -c release $(SWIFT_BUILD_FLAGS)
	python3 bench/run.py $(BENCH_ARGS)

bench-quick:
	@$(MAKE) --no-print-directory bench BENCH_ARGS="--quick $(BENCH_ARGS)"

# The release binary, the systemd unit, sysusers and tmpfiles snippets, the documentation,
# and /etc/dbaudit-gateway/gateway.conf only if absent (scripts/install.sh lists the paths).
#   make install [PREFIX=/usr/local] [DESTDIR=/staging/root] [SKIP_BUILD=1 BINARY=path]
# It builds with `swift build -c release` (needs what `make deps` installs) unless SKIP_BUILD=1.
install:
	@PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" SWIFT="$(SWIFT)" SKIP_BUILD="$(SKIP_BUILD)" BINARY="$(BINARY)" \
		scripts/install.sh

clean:
	rm -rf .build $(VENV)
