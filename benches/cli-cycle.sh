#!/usr/bin/env bash
# session_start + write cycle, µs per cycle, stickless against phpredis 5.3.7
# (Debian's php-redis, locking on), interleaved in one run on one Redis that
# this script starts on a free loopback port and stops by PID.
#
#   benches/cli-cycle.sh [cycles per run] [rounds]
#
# BASELINE_EXT=<another build of the extension> adds it to the interleave as
# `baseline`: a before/after of a change, on the same machine and Redis.
#
# Redis and php run pinned to one CPU (BENCH_CPU, default 0; empty to not
# pin): on a small VM a cross-core wake-up costs more than the cycle itself,
# and whether the two happen to share a core would decide the figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CYCLES=${1:-2000}
ROUNDS=${2:-7}
EXT=${STICKLESS_EXT:-$PWD/target/release/libstickless_php.so}
BENCH_CPU=${BENCH_CPU-0}
pin=()
if [[ -n "$BENCH_CPU" ]] && command -v taskset >/dev/null; then
  pin=(taskset -c "$BENCH_CPU")
fi
PHPREDIS=${PHPREDIS_EXT:-redis.so}
[ -f "$EXT" ] || { echo "missing $EXT: run make build" >&2; exit 1; }

# shellcheck source=benches/local-redis.sh
source benches/local-redis.sh
local_redis "${pin[@]}"

run() {
  case "$1" in
    stickless)
      "${pin[@]}" php -n -d "extension=$EXT" -d session.save_handler=stickless \
        -d "session.save_path=\"redis://127.0.0.1:$port/0?prefix=bench:\"" \
        benches/cli_cycle.php "$CYCLES" ;;
    baseline)
      "${pin[@]}" php -n -d "extension=$BASELINE_EXT" -d session.save_handler=stickless \
        -d "session.save_path=\"redis://127.0.0.1:$port/0?prefix=bench:\"" \
        benches/cli_cycle.php "$CYCLES" ;;
    phpredis-lock)
      "${pin[@]}" php -n -d extension=igbinary.so -d "extension=$PHPREDIS" -d session.save_handler=redis \
        -d "session.save_path=\"tcp://127.0.0.1:$port?prefix=bench:\"" \
        -d redis.session.locking_enabled=1 benches/cli_cycle.php "$CYCLES" ;;
  esac
}

handlers=(stickless phpredis-lock)
if [[ -n "${BASELINE_EXT:-}" ]]; then
  [ -f "$BASELINE_EXT" ] || { echo "missing $BASELINE_EXT" >&2; exit 1; }
  handlers=(baseline stickless phpredis-lock)
fi
declare -A results
for r in $(seq 1 "$ROUNDS"); do
  for h in "${handlers[@]}"; do
    results[$h]+="$(run "$h") "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
s=$(echo "${results[stickless]}" | median)
p=$(echo "${results[phpredis-lock]}" | median)
echo "cycles/run=$CYCLES rounds=$ROUNDS${pin:+ pinned to CPU $BENCH_CPU} (median µs per session_start+write cycle)"
echo "stickless:      $s   (runs: ${results[stickless]})"
echo "phpredis-lock:  $p   (runs: ${results[phpredis-lock]})"
if [[ -n "${BASELINE_EXT:-}" ]]; then
  b=$(echo "${results[baseline]}" | median)
  echo "baseline:       $b   (runs: ${results[baseline]})"
  awk -v s="$s" -v b="$b" 'BEGIN { printf "stickless - baseline: %+.2f µs per cycle\n", s-b }'
fi
awk -v s="$s" -v p="$p" 'BEGIN { printf "stickless takes %.2fx the time of phpredis-lock (%.2fx faster)\n", s/p, p/s }'
