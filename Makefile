# stickless: top-level tasks. Uses `cargo` from PATH.
#
#   make deps    install the Debian packages (scripts/install-deps.sh)
#   make build   deps + release build of the extension -> target/release/libstickless_php.so,
#                the Rust gateway example -> target/release/axum-gateway
#                and the admin command -> target/release/stickless
#   make demo    build + deploy/local/demo.sh (3 pods behind round-robin nginx, one user, 12 requests)
#   make up      build + start the local stack (deploy/local/stack.sh up); prints the URL
#   make down    stop the local stack
#   make status  show the local stack
#   make test    build + the workspace tests + k8s-validate + bench-smoke
#   make k8s-validate  deploy/kubernetes/ against the Kubernetes schemas, offline
#                (deploy/kubernetes/validate.sh; installs kubernetes-validate into target/)
#   make bench   the multi-pod load benchmark, every handler side by side -> target/bench/
#                (with phpredis 6.2 built from Debian trixie's source: make phpredis6)
#   make bench-smoke  the same for a few seconds per handler, and stickless on a 2-primary cluster (part of make test)
#   make phpredis6  phpredis 6.2 for the installed PHP -> target/phpredis/ (scripts/build-phpredis.sh)
#   make bench-cycle  µs per session_start+write cycle: stickless vs phpredis (locking on)
#   make bench-insn   user-space instructions per such cycle (callgrind; installs valgrind)
#   make fuzz    every fuzz target for 60 s (scripts/fuzz.sh; installs cargo-fuzz)
#   make fuzz-smoke  the same for 10 s each (CI)
#   make test-trixie  the extension and its PHP-facing tests on Debian 13 (PHP 8.4,
#                Redis 8, Valkey 8.1) in a root under target/platform/ (scripts/platform.sh;
#                needs root; builds into target/trixie/)
#   make test-sid     the same on Debian sid (PHP 8.4, Valkey 9)
#   make ci-trixie    CI's trixie leg: test-trixie's PHP-facing tests on Valkey only
#   make fmt     format the Rust code
#   make lint    rustfmt check + clippy with warnings as errors
#
# The stack scripts take their knobs from the environment, e.g.
#   SESSION_HANDLER=redis make demo     (Debian's phpredis instead of stickless)
# see the header of deploy/local/stack.sh for the full list.

EXT := target/release/libstickless_php.so

.PHONY: all deps build demo up down status test bench bench-smoke bench-cycle bench-insn fuzz fuzz-smoke fmt lint k8s-validate \
	test-trixie test-sid ci-trixie phpredis6 platform-tests platform-ci platform-check platform-build

all: build

deps:
	bash scripts/install-deps.sh

build: deps
	cargo build --release -p stickless-php -p stickless-axum-gateway -p stickless-cli
	@test -f $(EXT) || { echo "error: cargo did not produce $(EXT)" >&2; exit 1; }

demo: build
	bash deploy/local/demo.sh

up: build
	bash deploy/local/stack.sh up

down:
	bash deploy/local/stack.sh down

status:
	bash deploy/local/stack.sh status

# phpredis6: tests/tests/phpredis_migration.rs runs its mixed fleet against 6.2 too.
test: build phpredis6
	cargo test --workspace --profile release-tests
	cargo test --profile release-tests -p stickless --features metrics --test metrics_facade
	$(MAKE) k8s-validate
	$(MAKE) bench-smoke

k8s-validate:
	bash deploy/kubernetes/validate.sh

bench: build phpredis6
	cargo run --release -p stickless-bench -- $(BENCH_ARGS)

bench-smoke: build phpredis6
	cargo run --release -p stickless-bench -- --smoke --out target/bench-smoke
	cargo run --release -p stickless-bench -- --smoke --topology cluster --primaries 2 \
		--handlers stickless --rtt-ms 0 --out target/bench-smoke-cluster

phpredis6: deps
	bash scripts/build-phpredis.sh

bench-cycle: build
	bash benches/cli-cycle.sh

# valgrind only for this target: nothing else needs it.
bench-insn: build
	EXTRA_PACKAGES=valgrind bash scripts/install-deps.sh
	bash benches/cycle-instructions.sh

fuzz:
	bash scripts/fuzz.sh 60

fuzz-smoke:
	bash scripts/fuzz.sh 10

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# Another Debian, in a root of its own: set it up (once; again when its package
# list changes), then run platform-tests inside it. -k: every test binary runs
# even when an earlier one fails; make still exits non-zero then.
test-trixie test-sid: test-%:
	bash scripts/platform.sh setup $*
	bash scripts/platform.sh run $* -- make -k platform-tests

# Inside a platform root only (scripts/platform.sh sets STICKLESS_PLATFORM and a
# CARGO_TARGET_DIR of the suite's own): the extension against that root's
# php-dev, then the cross-component tests and the core crate's tests, each on
# Redis and on Valkey (the test helpers start STICKLESS_REDIS_SERVER, and the
# CLI next to it for clusters).
platform-tests: platform-e2e-redis platform-e2e-valkey platform-core-redis platform-core-valkey

# CI's trixie leg (.ci/run runs its steps one by one, to count each): the
# PHP-facing tests once, on Valkey, and the behaviour suite on both servers.
ci-trixie:
	bash scripts/platform.sh setup trixie
	bash scripts/platform.sh run trixie -- make -k platform-ci

platform-ci: platform-e2e-valkey platform-core-redis platform-core-valkey

platform-check:
	@test -n "$(STICKLESS_PLATFORM)" || { echo "error: run this inside scripts/platform.sh run SUITE" >&2; exit 1; }

# The same script as deploy/docker/'s builder stage, so the image's path is
# tested: it builds, then checks the module loads cleanly into this PHP.
platform-build: platform-check
	bash deploy/docker/build-extension.sh

platform-e2e-%: platform-build
	STICKLESS_REDIS_SERVER=/usr/bin/$*-server; $$STICKLESS_REDIS_SERVER --version; export STICKLESS_REDIS_SERVER; \
	cargo test --profile release-tests --no-fail-fast -p stickless-e2e

platform-core-%: platform-check
	STICKLESS_REDIS_SERVER=/usr/bin/$*-server; $$STICKLESS_REDIS_SERVER --version; export STICKLESS_REDIS_SERVER; \
	cargo test --profile release-tests --no-fail-fast -p stickless --features tokio
