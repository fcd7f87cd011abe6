#!/usr/bin/env bash
# User-space instructions per session_start + write cycle, counted by
# valgrind's callgrind: a figure that does not move with the machine's load,
# for telling whether a change made the extension's hot path cheaper. On a
# VM without hardware counters (perf stat shows <not supported>) it is the
# only one that resolves a few hundred instructions.
#
#   benches/cycle-instructions.sh [cycles]
#
# Runs benches/cli_cycle.php twice per handler, with 1 cycle and with
# 1 + cycles, and prints the difference divided by cycles, so start-up and
# shutdown cancel out. Handlers: stickless (STICKLESS_EXT, default the
# release build), BASELINE_EXT when set (another build, for a before/after),
# and phpredis 5.3.7 with locking on. Each also gets its top functions by
# inclusive cost in target/bench-insn/.
#
# Two things callgrind counts differently from the CPU: it does not emulate
# SHA-NI, so the key derivation's SHA-256 runs (and is counted) in software,
# about 3,400 instructions per cycle that the CPU does in a few hundred; and
# a `rep stosb` memset counts one instruction per byte.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CYCLES=${1:-200}
EXT=${STICKLESS_EXT:-$PWD/target/release/libstickless_php.so}
OUT=target/bench-insn
command -v valgrind >/dev/null || { echo "needs valgrind: make bench-insn installs it" >&2; exit 1; }
[ -f "$EXT" ] || { echo "missing $EXT: run make build" >&2; exit 1; }
mkdir -p "$OUT"

# shellcheck source=benches/local-redis.sh
source benches/local-redis.sh
local_redis

args() {
  case "$1" in
    stickless) echo "-d extension=$EXT -d session.save_handler=stickless" ;;
    baseline) echo "-d extension=$BASELINE_EXT -d session.save_handler=stickless" ;;
    phpredis-lock) echo "-d extension=igbinary.so -d extension=redis.so -d session.save_handler=redis -d redis.session.locking_enabled=1" ;;
  esac
}
save_path() {
  case "$1" in
    phpredis-lock) echo "tcp://127.0.0.1:$port?prefix=insn:" ;;
    *) echo "redis://127.0.0.1:$port/0?prefix=insn:" ;;
  esac
}

# Total instructions of one run of `cycles` cycles.
count() {
  local handler=$1 cycles=$2 file="$OUT/$1.$2.out"
  # shellcheck disable=SC2046 # args() is a list of words
  valgrind --tool=callgrind --callgrind-out-file="$file" -q \
    php -n $(args "$handler") -d "session.save_path=\"$(save_path "$handler")\"" \
    benches/cli_cycle.php "$cycles" >/dev/null
  callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}

handlers=(stickless phpredis-lock)
if [[ -n "${BASELINE_EXT:-}" ]]; then
  [ -f "$BASELINE_EXT" ] || { echo "missing $BASELINE_EXT" >&2; exit 1; }
  handlers=(baseline stickless phpredis-lock)
fi
echo "user-space instructions per session_start+write cycle (callgrind, $CYCLES cycles)"
declare -A per
for h in "${handlers[@]}"; do
  one=$(count "$h" 1)
  many=$(count "$h" $((CYCLES + 1)))
  per[$h]=$(( (many - one) / CYCLES ))
  callgrind_annotate --inclusive=yes "$OUT/$h.$((CYCLES + 1)).out" 2>/dev/null |
    sed -n 1,60p >"$OUT/$h.top.txt"
  printf '%-14s %8d\n' "$h:" "${per[$h]}"
done
awk -v s="${per[stickless]}" -v p="${per[phpredis-lock]}" \
  'BEGIN { printf "stickless runs %.2fx the instructions of phpredis-lock\n", s/p }'
if [[ -n "${BASELINE_EXT:-}" ]]; then
  awk -v s="${per[stickless]}" -v b="${per[baseline]}" \
    'BEGIN { printf "stickless - baseline: %+d instructions per cycle (%+.1f %%)\n", s-b, 100*(s-b)/b }'
fi
echo "top functions per handler: $OUT/<handler>.top.txt"
