#!/usr/bin/env bash
# The stickless demo: start the local stack (3 php-fpm pods behind a
# round-robin nginx, sessions in Redis), walk ONE user -- one cookie jar --
# through a series of requests, and show that the session follows the user
# from pod to pod. Fails (non-zero) unless the counter reached the number of
# requests and more than one pod served the user. Always stops the stack again,
# on failure and on Ctrl-C too.
#
# Knobs (environment variables; defaults in brackets):
#   DEMO_REQUESTS     requests to send [12]
#   DEMO_KEEP_STACK   1 = leave the stack running after a successful demo [0]
#   STACK_DIR         state dir [<repo>/target/demo-stack, so the demo never
#                     collides with a stack started by `make up`]
#   ...and every knob of deploy/local/stack.sh (SESSION_HANDLER, PHP_EXTENSION,
#   SESSION_SAVE_PATH, PODS, FPM_WORKERS, ...), passed through.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
STACK="$SCRIPT_DIR/stack.sh"
export STACK_DIR=${STACK_DIR:-$REPO_ROOT/target/demo-stack}
DEMO_REQUESTS=${DEMO_REQUESTS:-12}
DEMO_KEEP_STACK=${DEMO_KEEP_STACK:-0}
if ! [[ "$DEMO_REQUESTS" =~ ^[0-9]+$ ]] || ((DEMO_REQUESTS < 2)); then
  echo "demo: DEMO_REQUESTS must be a number >= 2" >&2
  exit 2
fi

jar=""
keep=0
cleanup() {
  [[ -z "$jar" ]] || rm -f "$jar"
  if ((keep)); then
    echo "demo: stack left running (DEMO_KEEP_STACK=1); stop it with: STACK_DIR=$STACK_DIR $STACK down"
  else
    bash "$STACK" down || echo "demo: warning: stack.sh down failed" >&2
  fi
}
# shellcheck disable=SC2154 # rc is assigned inside the trap string
trap 'rc=$?; trap - EXIT INT TERM; cleanup; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

url=$(bash "$STACK" up)
jar=$(mktemp "${TMPDIR:-/tmp}/stickless-demo-cookies.XXXXXX")

# json_field NAME JSON -> the value of "NAME" in a flat JSON object (string or number)
json_field() {
  sed -n -e 's/.*"'"$1"'": *"\([^"]*\)".*/\1/p' -e 's/.*"'"$1"'": *\([0-9][0-9]*\).*/\1/p' <<<"$2" | head -n 1
}

echo
echo "One user (one cookie jar), $DEMO_REQUESTS requests to $url"
declare -A served=()
order=()
counter=0
in_step=1
for ((i = 1; i <= DEMO_REQUESTS; i++)); do
  if ! body=$(curl -fsS --max-time 10 -b "$jar" -c "$jar" -H 'Accept: application/json' "${url}?format=json"); then
    echo "demo: request $i failed" >&2
    exit 1
  fi
  pod=$(json_field pod "$body")
  counter=$(json_field counter "$body")
  session=$(json_field session "$body")
  if [[ -z "$pod" || -z "$counter" ]]; then
    echo "demo: request $i: unexpected response: $body" >&2
    exit 1
  fi
  note=""
  if [[ "$counter" != "$i" ]]; then
    note="  <-- expected $i: the session was lost"
    in_step=0
  fi
  printf 'request %2d  served by %-6s  counter=%-3s session %s%s\n' "$i" "$pod" "$counter" "$session" "$note"
  if [[ -z "${served[$pod]:-}" ]]; then
    served[$pod]=0
    order+=("$pod")
  fi
  served[$pod]=$((served[$pod] + 1))
done

summary=""
for pod in "${order[@]}"; do
  summary+=" $pod x${served[$pod]}"
done
echo "pods that served this user:$summary"

ok=1
if [[ "$counter" != "$DEMO_REQUESTS" || "$in_step" != 1 ]]; then
  echo "FAIL: the counter ended at $counter, expected $DEMO_REQUESTS (the session did not follow the user)" >&2
  ok=0
fi
if ((${#order[@]} < 2)); then
  echo "FAIL: only ${order[*]} served the user; expected requests spread over more than one pod" >&2
  ok=0
fi
if ((!ok)); then
  exit 1
fi
echo "PASS: one session, counter reached $DEMO_REQUESTS across ${#order[@]} pods, no sticky routing"
if [[ "$DEMO_KEEP_STACK" == 1 ]]; then
  keep=1
  echo "demo: open $url"
fi
