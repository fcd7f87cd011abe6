#!/usr/bin/env bash
# The stickless demo: start the local stack (3 php-fpm pods behind a
# round-robin nginx, sessions in Redis, the Rust gateway on /api/), walk ONE
# user -- one cookie jar -- through a series of requests, and show that the
# session follows the user from pod to pod. Fails (non-zero) unless the
# counter reached the number of requests and more than one pod served the user.
#
# Then PHP and Rust on that user's session: PHP logs the user in (login.php),
# the Rust gateway reads the user (GET /api/me, no lock) and adds two items to
# the cart (POST /api/cart, under the session's lock), and PHP shows the cart
# (cart.php). Fails unless Rust saw PHP's user and PHP shows both items.
# Skipped, with a note, when the stack cannot run the gateway (a
# SESSION_HANDLER other than stickless, GATEWAY=0).
#
# Always stops the stack again, on failure and on Ctrl-C too.
#
# Knobs (environment variables; defaults in brackets):
#   DEMO_REQUESTS     requests to send [12]
#   GATEWAY           passed to stack.sh [1 with the stickless handler, so a
#                     missing gateway binary fails the demo; else auto]
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
if [[ "${SESSION_HANDLER:-stickless}" == stickless ]]; then
  export GATEWAY=${GATEWAY:-1}
fi
PHP_CLI=${PHP_CLI:-$(command -v php || true)}

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

# --- part two: PHP and the Rust gateway on one session ---------------------

# call METHOD PATH [JSON] -> STATUS, SERVED_BY (the X-Pod header) and BODY of
# a request with the user's cookie jar.
call() {
  local method=$1 path=$2 data=${3:-} out head
  local args=(-sS --max-time 10 -b "$jar" -c "$jar" -X "$method" -D - -H 'Accept: application/json')
  [[ -z "$data" ]] || args+=(-H 'Content-Type: application/json' --data "$data")
  if ! out=$(curl "${args[@]}" "${url}${path}"); then
    echo "demo: $method $path failed" >&2
    exit 1
  fi
  out=${out//$'\r'/}
  head=${out%%$'\n\n'*}
  BODY=${out#*$'\n\n'}
  BODY=${BODY%$'\n'}
  STATUS=$(sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' <<<"$head")
  SERVED_BY=$(sed -n 's/^[Xx]-[Pp]od: *//p' <<<"$head" | head -n 1)
}

# describe JSON -> "user: NAME" and "cart: SKU xQTY, ..." lines (what is
# there), or "error: CODE" for an error reply.
describe() {
  # shellcheck disable=SC2016 # PHP code, not shell
  "$PHP_CLI" -n -r '
    $j = json_decode(stream_get_contents(STDIN), true);
    if (!is_array($j)) { echo "error: not JSON\n"; exit; }
    if (isset($j["error"])) { echo "error: ", $j["error"], "\n"; exit; }
    $user = $j["user"] ?? null;
    if (is_array($user)) { echo "user: ", $user["name"] ?? "?", " (id ", $user["id"] ?? "?", ")\n"; }
    elseif (is_string($user)) { echo "user: $user\n"; }
    if (is_array($j["cart"] ?? null)) {
        $items = array_map(fn ($i) => ($i["sku"] ?? "?") . " x" . ($i["qty"] ?? "?"), $j["cart"]);
        echo "cart: ", $items === [] ? "(empty)" : implode(", ", $items), "\n";
    }' <<<"$1"
}

# field NAME DESCRIPTION -> the value of NAME in describe's output
field() {
  sed -n "s/^$1: //p" <<<"$2"
}

# step N WHO WHAT: prints one line of the walk from STATUS, SERVED_BY, BODY
# and sets D to BODY's description.
step() {
  D=$(describe "$BODY")
  local shown
  shown=$(paste -sd ';' - <<<"$D")
  shown=${shown//;/; }
  printf 'step %s  %-4s %-26s HTTP %s  served by %-12s %s\n' "$1" "$2" "$3" "$STATUS" "${SERVED_BY:-?}" "$shown"
}

gateway_port=$(sed -n "s/^GATEWAY_PORT='\(.*\)'$/\1/p" "$STACK_DIR/stack.env" 2>/dev/null || true)
echo
if [[ -z "$gateway_port" ]]; then
  echo "PHP and Rust on one session: skipped, this stack runs no Rust gateway (GATEWAY=${GATEWAY:-auto}, handler ${SESSION_HANDLER:-stickless})"
elif [[ -z "$PHP_CLI" ]]; then
  echo "demo: no php CLI to read the JSON replies with" >&2
  exit 1
else
  echo "PHP and Rust on one session: PHP logs the user in, the Rust gateway (${url}api/) reads the"
  echo "user without a lock and adds to the cart under the session's lock, PHP shows the cart"
  fail=()
  call POST login.php
  step 1 PHP "POST login.php"
  [[ "$STATUS" == 200 && "$(field user "$D")" == "Ada (id 42)" ]] || fail+=("PHP could not log the user in")
  call GET api/me
  step 2 Rust "GET /api/me (no lock)"
  [[ "$STATUS" == 200 && "$(field user "$D")" == "Ada (id 42)" ]] || fail+=("Rust did not see the user PHP logged in")
  call POST api/cart '{"sku": "tea", "qty": 2}'
  step 3 Rust "POST /api/cart (locked)"
  [[ "$STATUS" == 200 ]] || fail+=("Rust could not add the first item")
  call POST api/cart '{"sku": "scone", "qty": 1}'
  step 4 Rust "POST /api/cart (locked)"
  [[ "$STATUS" == 200 ]] || fail+=("Rust could not add the second item")
  call GET cart.php
  step 5 PHP "GET cart.php"
  [[ "$STATUS" == 200 && "$(field cart "$D")" == "tea x2, scone x1" ]] ||
    fail+=("PHP does not show both items Rust added (expected: tea x2, scone x1)")
  if ((${#fail[@]})); then
    printf 'FAIL: %s\n' "${fail[@]}" >&2
    exit 1
  fi
  echo "PASS: PHP's login reached Rust, and both items Rust added reached PHP, on one session"
fi

if [[ "$DEMO_KEEP_STACK" == 1 ]]; then
  keep=1
  echo "demo: open $url"
fi
