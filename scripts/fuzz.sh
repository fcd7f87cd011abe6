#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each):
#   scripts/fuzz.sh [seconds per target]
# Targets parse what attackers and operators control: stored values
# (envelope), the PHP session data inside them (php_session), save paths
# (save_path) and cookies (session_id). A crash stops the run with the input
# saved under fuzz/artifacts/<target>/; add it as a regression test in
# crates/stickless before fixing.
#
# cargo-fuzz needs nightly-only compiler flags (sanitizers, coverage); the
# stable toolchain accepts them with RUSTC_BOOTSTRAP=1, so no second
# toolchain is needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_EACH=${1:-60}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
for target in envelope php_session save_path session_id; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${SECONDS_EACH}s" >&2
  (cd fuzz && cargo fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 2>&1 | tail -n 25)
done
echo "fuzz: no crashes"
