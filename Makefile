# stickless: top-level tasks. Uses `cargo` from PATH.
#
#   make deps    install the Debian packages (scripts/install-deps.sh)
#   make build   deps + release build of the extension -> target/release/libstickless_php.so
#                and of the Rust gateway example -> target/release/axum-gateway
#   make demo    build + deploy/local/demo.sh (3 pods behind round-robin nginx, one user, 12 requests)
#   make up      build + start the local stack (deploy/local/stack.sh up); prints the URL
#   make down    stop the local stack
#   make status  show the local stack
#   make test    build + the workspace tests + bench-smoke
#   make bench   the multi-pod load benchmark, every handler side by side -> target/bench/
#   make bench-smoke  the same for a few seconds per handler (part of make test)
#   make bench-cycle  µs per session_start+write cycle: stickless vs phpredis (locking on)
#   make fuzz    every fuzz target for 60 s (scripts/fuzz.sh; installs cargo-fuzz)
#   make fuzz-smoke  the same for 10 s each (CI)
#   make fmt     format the Rust code
#   make lint    rustfmt check + clippy with warnings as errors
#
# The stack scripts take their knobs from the environment, e.g.
#   SESSION_HANDLER=redis make demo     (Debian's phpredis instead of stickless)
# see the header of deploy/local/stack.sh for the full list.

EXT := target/release/libstickless_php.so

.PHONY: all deps build demo up down status test bench bench-smoke bench-cycle fuzz fuzz-smoke fmt lint

all: build

deps:
	bash scripts/install-deps.sh

build: deps
	cargo build --release -p stickless-php -p stickless-axum-gateway
	@test -f $(EXT) || { echo "error: cargo did not produce $(EXT)" >&2; exit 1; }

demo: build
	bash deploy/local/demo.sh

up: build
	bash deploy/local/stack.sh up

down:
	bash deploy/local/stack.sh down

status:
	bash deploy/local/stack.sh status

test: build
	cargo test --workspace --release
	$(MAKE) bench-smoke

bench: build
	cargo run --release -p stickless-bench -- $(BENCH_ARGS)

bench-smoke: build
	cargo run --release -p stickless-bench -- --smoke --out target/bench-smoke

bench-cycle: build
	bash benches/cli-cycle.sh

fuzz:
	bash scripts/fuzz.sh 60

fuzz-smoke:
	bash scripts/fuzz.sh 10

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
