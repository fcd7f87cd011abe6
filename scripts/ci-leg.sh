#!/usr/bin/env bash
# One leg of CI: runs CMD with its output shown and kept in target/ci/NAME.log,
# then adds a line to target/ci/summary: the leg's status, its wall time and
# the pass/fail counts of every cargo test binary it ran ("test result:"
# lines), or of run-tests.php's summary where there are none.
#
#   scripts/ci-leg.sh NAME CMD...      exits with CMD's status
#   scripts/ci-leg.sh --summary        prints the summary; non-zero if a leg failed
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=target/ci
mkdir -p "$dir"

if [[ ${1:-} == --summary ]]; then
  echo
  echo "== CI legs =="
  awk -F'\t' '{ printf "%-20s %-5s %7s  %s\n", $1, $2, $3, $4 }' "$dir/summary"
  ! grep -q $'\tFAIL\t' "$dir/summary"
  exit
fi

name=$1
shift
log=$dir/$name.log
start=$(date +%s)
echo "== leg $name: $* =="
"$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
secs=$(($(date +%s) - start))
counts=$(awk '
  /^test result: / {
    for (i = 1; i <= NF; i++) {
      if ($(i + 1) ~ /^passed/) p += $i
      if ($(i + 1) ~ /^failed/) f += $i
      if ($(i + 1) ~ /^ignored/) g += $i
    }
    bins++
  }
  /^error: could not compile/ { broken++ }
  END {
    if (bins) printf "%d passed, %d failed, %d ignored (%d test binaries%s)", p, f, g, bins, broken ? ", " broken " did not compile" : ""
    else printf "no cargo tests"
  }' "$log")
verdict=pass
((status == 0)) || verdict=FAIL
printf '%s\t%s\t%ss\t%s\n' "$name" "$verdict" "$secs" "$counts" >>"$dir/summary"
echo "== leg $name: $verdict in ${secs}s: $counts =="
exit "$status"
