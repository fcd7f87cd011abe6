#!/usr/bin/env bash
# Local demo and benchmark stack for stickless: one redis-server, N php-fpm
# masters ("pods"), optionally one memcached, optionally the Rust gateway
# (examples/axum-gateway) sharing the pods' sessions, and one nginx
# load-balancing round-robin across the pods and sending /api/ to the gateway,
# all on 127.0.0.1, all with their state (configs, pidfiles, sockets, logs,
# file sessions) under $STACK_DIR.
#
#   deploy/local/stack.sh up       start everything, wait until it serves, print the URL
#   deploy/local/stack.sh down     stop what `up` started (by the PIDs in its pidfiles)
#   deploy/local/stack.sh status   show what is running; exit 0 healthy, 1 degraded, 3 stopped
#
# Nothing here uses the system services (redis on 6379, memcached on 11211,
# nginx on 80, the php-fpm systemd unit): every port is picked free on
# loopback, every process is started by this script, and `down` only signals
# PIDs from our own pidfiles, after checking that each PID still belongs to
# this stack. `up` starts afresh (it deletes its own sub-directories of
# $STACK_DIR: redis, memcached, pods, gateway, nginx, sessions) and writes
# $STACK_DIR/stack.env (URL, ports, pods, handler) once everything serves.
#
# Session handlers (SESSION_HANDLER), for comparing them under load:
#   stickless   this project's extension; sessions in the stack's redis
#   redis       phpredis; sessions in the stack's redis. Locking is off by
#               default; PHP_DEFINES="redis.session.locking_enabled=1" turns it on
#               (tune with redis.session.lock_retries / lock_wait_time)
#   memcached   php-memcached; sessions in a memcached that `up` starts for the
#               stack. php-memcached locks by default (memcached.sess_locking=1)
#   files       PHP's own files handler, one directory PER POD: a user whose
#               requests land on another pod loses the session (the problem
#               stickless solves)
#   any other name works with an explicit SESSION_SAVE_PATH (and PHP_EXTENSION).
# Redis is started whatever the handler (healthz and status expect it).
#
# How PHP is configured: php-fpm runs with Debian's php.ini and conf.d (so
# igbinary, msgpack, redis and memcached are already loaded when their packages
# are installed), plus the pool's php_admin_value[session.*], plus "-d" flags
# for PHP_EXTENSION and PHP_DEFINES. An extension in PHP_EXTENSION that the ini
# files already load is skipped (loading it twice is an error). With
# PHP_NO_INI=1 the pods run "php-fpm -n": no ini files, only what PHP_EXTENSION
# lists, in that order (phpredis and php-memcached need igbinary, and
# php-memcached msgpack, loaded before them; the defaults below do that).
#
# Knobs (environment variables; defaults in brackets):
#   STACK_DIR          state dir [<repo>/target/stack]
#   PODS               number of php-fpm pods, named pod-a, pod-b, ... [3]
#   FPM_WORKERS        workers per pod (pm=static) [2]
#   SESSION_HANDLER    session.save_handler: stickless | redis | memcached | files
#                      | another handler name [stickless]
#   PHP_EXTENSION      extensions loaded into every pod with -d extension=..., in
#                      order, space-separated; each a path to a .so (must exist) or
#                      a name PHP finds in its extension_dir ("redis", "redis.so");
#                      empty = load none. [stickless: $TARGET_DIR/release/libstickless_php.so;
#                      redis: "igbinary redis"; memcached: "igbinary msgpack memcached";
#                      else empty]
#   PHP_NO_INI         1 = run php-fpm with -n (no php.ini, no conf.d) [0]
#   SESSION_PREFIX     key prefix used by the default redis save paths [demo:]
#   SESSION_SAVE_PATH  session.save_path, with placeholders: "{redis_port}",
#                      "{memcached_port}" (the stack's servers) and "{pod}" (the
#                      pod's name, per pod) [stickless: redis://127.0.0.1:{redis_port}/0?prefix=demo:;
#                      redis: tcp://127.0.0.1:{redis_port}?prefix=demo:;
#                      memcached: 127.0.0.1:{memcached_port};
#                      files: $STACK_DIR/sessions/{pod} (created; for the files
#                      handler the directory part, after any "N;" or "N;MODE;", is created)]
#   POD_SESSION_INI    admin | value | none: set session.save_handler and save_path
#                      with php_admin_value in every pool (the application cannot
#                      change them: its session_set_save_handler() is silently
#                      ignored), with php_value (as php.ini sets them: the
#                      application may, e.g. Symfony wrapping PHP's own handler in
#                      its StrictSessionHandler), or leave them to php.ini and the
#                      application (see field/object.php); the save path is in the
#                      pods' $STICKLESS_URL either way [admin]
#   POD_HANDLERS       a mixed fleet: space-separated "handler=save_path" words, one
#                      per pod in order (pod-a takes the first, and the list repeats),
#                      each overriding SESSION_HANDLER and SESSION_SAVE_PATH for its
#                      pods, with the same placeholders; e.g. phpredis and stickless
#                      compat pods side by side during a migration (docs/MIGRATION.md):
#                      "redis=tcp://127.0.0.1:{redis_port} stickless=redis://127.0.0.1:{redis_port}/0?compat=phpredis"
#                      Every handler's extension must be loaded (PHP_EXTENSION) [none]
#   PHP_DEFINES        extra "-d key=value" ini settings for the pods, space-separated
#                      key=value words (e.g. "opcache.enable=0 session.gc_probability=0",
#                      "redis.session.locking_enabled=1", "memcached.sess_locking=0")
#   MEMCACHED          1 = start memcached whatever the handler [1 when
#                      SESSION_HANDLER=memcached or the save path has {memcached_port}, else 0]
#   MEMCACHED_MEMORY   memcached's cache size in MB (-m) [64]
#   POD_LISTEN         unix | tcp: pods listen on a unix socket or a loopback port
#                      [unix; tcp when the socket path would be too long]
#   REDIS_PORT         redis port [a free one]
#   MEMCACHED_PORT     memcached port [a free one]
#   NGINX_PORT         nginx port [a free one]
#   NGINX_CONNECTIONS  nginx worker_connections (a proxied request holds two) [4096]
#   GATEWAY            auto | 1 | 0: run the Rust gateway (examples/axum-gateway)
#                      behind nginx's /api/. It speaks stickless, so it needs
#                      SESSION_HANDLER=stickless, a save path without {pod}, and a
#                      session.serialize_handler of php or php_serialize. auto: run
#                      it when those hold and GATEWAY_BIN exists; 1: fail when they
#                      do not [auto]
#   GATEWAY_BIN        the gateway binary [$TARGET_DIR/release/axum-gateway]
#   CARGO_TARGET_DIR   where the defaults above are built: TARGET_DIR [<repo>/target]
#   GATEWAY_PORT       gateway port [a free one]
#   STACK_USER         only when run as root: user the php-fpm workers, nginx workers
#                      and memcached run as [root]; e.g. www-data (it must be able to
#                      read deploy/local/www and reach $STACK_DIR). The gateway runs
#                      as the user running this script.
#   READY_TIMEOUT      seconds to wait for each readiness condition [30]
#   DOC_ROOT           the directory nginx serves and the pods run scripts from; it
#                      must hold hello.php and healthz.php (the readiness probes; a
#                      framework's public/ can require deploy/local/www's) [deploy/local/www]
#   FRONT_CONTROLLER   a script in DOC_ROOT, e.g. index.php, that gets every request
#                      for no file there, with its URI unchanged (REQUEST_URI /login,
#                      SCRIPT_NAME /index.php), as routing frameworks expect [none: 404]
#   PHP_FPM, PHP_CLI, NGINX, REDIS_SERVER, REDIS_CLI, MEMCACHED_SERVER   binaries
#                      [php-fpm<V> (V: the version of PHP_CLI, e.g. 8.4) or php-fpm,
#                      php, nginx, redis-server, redis-cli, memcached]
#
# Endpoints (deploy/local/www): / (demo page), hello.php (no session),
# healthz.php (readiness), metrics.php (the pod's counters, Prometheus text),
# login.php and cart.php (a user and a cart the gateway shares), bench/{counter,read,big,slow}.php and field/*.php (what production
# sites do to a session: early cookies, long requests, handler objects; see
# their headers); every pod
# answers with an "X-Pod: <pod>" header. /api/ (me, cart, healthz) is the
# gateway, "X-Pod: axum-gateway"; 503 JSON when it is not running.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
WWW_DIR=${DOC_ROOT:-$SCRIPT_DIR/www}
[[ "$WWW_DIR" == /* ]] || WWW_DIR="$PWD/$WWW_DIR"
WWW_DIR=${WWW_DIR%/}

STACK_DIR=${STACK_DIR:-$REPO_ROOT/target/stack}
# Where cargo put the extension and the gateway (CARGO_TARGET_DIR, relative
# to the repo like cargo's, or target/).
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO_ROOT/$TARGET_DIR"
case "$STACK_DIR" in
  /*) ;;
  *) STACK_DIR="$PWD/$STACK_DIR" ;;
esac
STACK_DIR=${STACK_DIR%/}
STATE_FILE="$STACK_DIR/stack.env"
READY_TIMEOUT=${READY_TIMEOUT:-30}
STOP_TIMEOUT=${STOP_TIMEOUT:-15}

log() { printf 'stack: %s\n' "$*" >&2; }
die() {
  printf 'stack: error: %s\n' "$*" >&2
  exit 1
}

# find_bin VAR_VALUE CANDIDATE... -> first one that is executable
find_bin() {
  local c p
  for c in "$@"; do
    [[ -n "$c" ]] || continue
    if [[ "$c" == */* ]]; then
      [[ -x "$c" ]] && { printf '%s\n' "$c"; return 0; }
    elif p=$(command -v "$c" 2>/dev/null); then
      printf '%s\n' "$p"
      return 0
    else
      # /usr/sbin is not on every user's PATH
      for p in /usr/sbin/"$c" /usr/local/sbin/"$c"; do
        [[ -x "$p" ]] && { printf '%s\n' "$p"; return 0; }
      done
    fi
  done
  return 1
}

resolve_bins() {
  PHP_CLI=$(find_bin "${PHP_CLI:-}" php) || die "php CLI not found (run scripts/install-deps.sh)"
  # The php-fpm of the same PHP version (Debian names it php-fpm8.4 and so on).
  local version
  # shellcheck disable=SC2016 # PHP code, not shell
  version=$("$PHP_CLI" -n -r 'echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;' 2>/dev/null) || version=""
  PHP_FPM=$(find_bin "${PHP_FPM:-}" ${version:+"php-fpm$version"} php-fpm) || die "php-fpm not found (run scripts/install-deps.sh)"
  NGINX=$(find_bin "${NGINX:-}" nginx) || die "nginx not found (run scripts/install-deps.sh)"
  REDIS_SERVER=$(find_bin "${REDIS_SERVER:-}" redis-server) || die "redis-server not found (run scripts/install-deps.sh)"
  REDIS_CLI=$(find_bin "${REDIS_CLI:-}" redis-cli) || die "redis-cli not found (run scripts/install-deps.sh)"
  command -v curl >/dev/null 2>&1 || die "curl not found (run scripts/install-deps.sh)"
}

# --- processes --------------------------------------------------------------

# proc_state PID -> one-letter state from /proc/PID/stat, empty when gone.
proc_state() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  printf '%s\n' "${stat%% *}"
}

# A zombie is as good as gone: it holds no port and can't be signalled away.
pid_running() {
  local s
  s=$(proc_state "$1")
  [[ -n "$s" && "$s" != Z && "$s" != X ]]
}

# children_of PID -> PIDs whose parent is PID
children_of() {
  local f stat rest ppid pid
  for f in /proc/[0-9]*/stat; do
    stat=$(cat "$f" 2>/dev/null) || continue
    rest=${stat##*) }
    read -r _ ppid _ <<<"$rest"
    if [[ "$ppid" == "$1" ]]; then
      pid=${f#/proc/}
      printf '%s\n' "${pid%/stat}"
    fi
  done
}

read_pidfile() {
  local pid=""
  if [[ -r "$1" ]]; then
    read -r pid <"$1" 2>/dev/null || true
  fi
  [[ "$pid" =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
  return 0
}

# owned_pid KIND PIDFILE -> the PID if it is alive and still belongs to this
# stack (guards against a stale pidfile whose PID was reused by someone else).
owned_pid() {
  local kind=$1 pidfile=$2 pid cmdline cwd
  pid=$(read_pidfile "$pidfile")
  [[ -n "$pid" ]] && pid_running "$pid" || return 0
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
  case "$kind" in
    redis)
      # redis (or valkey) rewrites its title; its working directory is our --dir.
      cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || cwd=""
      [[ ("$cmdline" == *redis* || "$cmdline" == *valkey*) && "$cwd" == "$STACK_DIR/redis" ]] || return 0
      ;;
    memcached)
      # started in its state dir by start_memcached
      cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || cwd=""
      [[ "$cmdline" == *memcached* && "$cwd" == "$STACK_DIR/memcached" ]] || return 0
      ;;
    gateway)
      # started in its state dir by start_gateway, with --listen
      cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || cwd=""
      [[ "$cmdline" == *" --listen "* && "$cwd" == "$STACK_DIR/gateway" ]] || return 0
      ;;
    *)
      # php-fpm: "php-fpm: master process (<conf>)"; nginx: "nginx: master process ... -c <conf>"
      [[ "$cmdline" == *"$STACK_DIR/"* ]] || return 0
      ;;
  esac
  printf '%s\n' "$pid"
}

# wait_until TIMEOUT DESCRIPTION COMMAND... : poll COMMAND every 0.1s until it
# succeeds, at most TIMEOUT seconds.
wait_until() {
  local timeout=$1 desc=$2
  shift 2
  local tries=$((timeout * 10)) i
  for ((i = 0; i < tries; i++)); do
    if "$@"; then
      return 0
    fi
    sleep 0.1
  done
  log "timed out after ${timeout}s waiting for $desc"
  return 1
}

none_running() {
  local p
  for p in "$@"; do
    pid_running "$p" && return 1
  done
  return 0
}

# stop_component NAME KIND PIDFILE SIGNAL
stop_component() {
  local name=$1 kind=$2 pidfile=$3 sig=$4 pid stale
  pid=$(owned_pid "$kind" "$pidfile")
  if [[ -z "$pid" ]]; then
    stale=$(read_pidfile "$pidfile")
    if [[ -n "$stale" ]] && pid_running "$stale"; then
      log "$name: pid $stale from $pidfile is not ours any more; leaving it alone"
    fi
    rm -f "$pidfile"
    return 0
  fi
  # Remember the workers too, so we can wait until they are gone as well.
  local pids=("$pid") child
  while read -r child; do
    [[ -n "$child" ]] && pids+=("$child")
  done < <(children_of "$pid")
  log "stopping $name (pid ${pids[*]})"
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_until "$STOP_TIMEOUT" "$name to exit" none_running "${pids[@]}"; then
    log "$name did not exit; sending SIGKILL to ${pids[*]}"
    for child in "${pids[@]}"; do
      if pid_running "$child"; then
        kill -KILL "$child" 2>/dev/null || true
      fi
    done
    wait_until 5 "$name to die" none_running "${pids[@]}" || return 1
  fi
  rm -f "$pidfile"
}

# --- configuration -----------------------------------------------------------

pod_names() {
  local letters=abcdefghijklmnopqrstuvwxyz i
  for ((i = 0; i < PODS; i++)); do
    printf 'pod-%s\n' "${letters:i:1}"
  done
}

load_state() {
  [[ -r "$STATE_FILE" ]] || return 1
  # shellcheck disable=SC1090
  source "$STATE_FILE"
}

# free_port -> a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  local port
  # shellcheck disable=SC2016 # PHP code, not shell
  port=$("$PHP_CLI" -n -r '
    $s = stream_socket_server("tcp://127.0.0.1:0", $errno, $errstr);
    if (!$s) { exit(1); }
    $name = stream_socket_get_name($s, false);
    echo substr($name, strrpos($name, ":") + 1);' 2>/dev/null) || port=""
  if [[ ! "$port" =~ ^[0-9]+$ ]]; then
    # Fallback: probe random high ports until one refuses connections.
    local i
    for ((i = 0; i < 50; i++)); do
      port=$((20000 + RANDOM % 20000))
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
      fi
    done
  fi
  printf '%s\n' "$port"
}

# pid_listens PID PORT: PID holds the socket listening on 127.0.0.1:PORT. A
# server that daemonizes (or is started in the background) before it binds is
# alive for a moment even when the port is taken, and then whoever holds the
# port would answer our readiness probe.
pid_listens() {
  local pid=$1 want inode
  want=$(printf '0100007F:%04X' "$2")
  # /proc/net/tcp: sl local_address rem_address st(0A = LISTEN) ... inode
  inode=$(awk -v a="$want" '$2 == a && $4 == "0A" { print $10; exit }' /proc/net/tcp 2>/dev/null)
  [[ -n "$inode" ]] || return 1
  local fd
  for fd in /proc/"$pid"/fd/*; do
    [[ "$(readlink "$fd" 2>/dev/null)" == "socket:[$inode]" ]] && return 0
  done
  return 1
}

redis_ready() {
  local pid
  pid=$(owned_pid redis "$STACK_DIR/redis/redis.pid")
  [[ -n "$pid" ]] && pid_listens "$pid" "$REDIS_PORT" &&
    [[ "$("$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

redis_dead() {
  local pid
  pid=$(read_pidfile "$STACK_DIR/redis/redis.pid")
  [[ -n "$pid" ]] && ! pid_running "$pid"
}

start_redis() {
  local dir="$STACK_DIR/redis" attempt fixed=${REDIS_PORT:-}
  mkdir -p "$dir"
  for attempt in 1 2 3 4 5; do
    REDIS_PORT=${fixed:-$(free_port)}
    [[ "$REDIS_PORT" != 6379 ]] || die "refusing to use port 6379 (the system redis)"
    rm -f "$dir/redis.pid"
    "$REDIS_SERVER" \
      --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
      --save '' --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" \
      --dir "$dir" --logfile "$dir/redis.log" </dev/null
    # Ready once it answers PING; give up early if it died (port taken).
    local i
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
      redis_ready && {
        log "redis ready on 127.0.0.1:$REDIS_PORT (pid $(read_pidfile "$dir/redis.pid"))"
        return 0
      }
      redis_dead && break
      sleep 0.1
    done
    redis_dead || die "redis did not answer PING within ${READY_TIMEOUT}s (see $dir/redis.log)"
    [[ -z "$fixed" ]] || die "redis failed to start on port $fixed (see $dir/redis.log)"
    log "redis failed to start on port $REDIS_PORT (attempt $attempt); trying another port"
  done
  die "redis failed to start (see $dir/redis.log)"
}

memcached_ready() {
  local pid reply
  pid=$(owned_pid memcached "$STACK_DIR/memcached/memcached.pid")
  [[ -n "$pid" ]] && pid_listens "$pid" "$MEMCACHED_PORT" || return 1
  reply=$(
    exec 3<>"/dev/tcp/127.0.0.1/$MEMCACHED_PORT" || exit 1
    printf 'version\r\n' >&3
    IFS= read -r -t 2 line <&3 || exit 1
    printf '%s\n' "$line"
  ) 2>/dev/null || return 1
  [[ "$reply" == VERSION* ]]
}

memcached_dead() {
  local pid
  pid=$(read_pidfile "$STACK_DIR/memcached/memcached.pid")
  [[ -z "$pid" ]] || ! pid_running "$pid"
}

start_memcached() {
  local dir="$STACK_DIR/memcached" attempt fixed=${MEMCACHED_PORT:-} user_args=() i pid
  mkdir -p "$dir"
  if [[ "$(id -u)" -eq 0 ]]; then
    # memcached refuses to run as root without -u.
    user_args=(-u "$STACK_USER")
  fi
  for attempt in 1 2 3 4 5; do
    MEMCACHED_PORT=${fixed:-$(free_port)}
    [[ "$MEMCACHED_PORT" != 11211 ]] || die "refusing to use port 11211 (the system memcached)"
    # Not -d -P: a daemonized memcached that cannot write its pidfile (as
    # STACK_USER) keeps running without one, and nothing could stop it. In the
    # background instead, its PID is $!, and we write the pidfile. Its working
    # directory is $dir, which owned_pid checks. -U 0: no UDP.
    (
      cd "$dir"
      exec nohup "$MEMCACHED_SERVER" "${user_args[@]}" -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 \
        -m "$MEMCACHED_MEMORY" </dev/null >>"$dir/memcached.log" 2>&1
    ) &
    pid=$!
    printf '%s\n' "$pid" >"$dir/memcached.pid"
    # Ready once it answers "version"; give up early if it exited (port taken).
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
      memcached_ready && {
        log "memcached ready on 127.0.0.1:$MEMCACHED_PORT (pid $pid)"
        return 0
      }
      memcached_dead && break
      sleep 0.1
    done
    memcached_dead || die "memcached did not answer within ${READY_TIMEOUT}s (see $dir/memcached.log)"
    tail -n 3 "$dir/memcached.log" >&2 || true
    [[ -z "$fixed" ]] || die "memcached failed to start on port $fixed (see $dir/memcached.log)"
    log "memcached failed to start on port $MEMCACHED_PORT (attempt $attempt); trying another port"
  done
  die "memcached failed to start (see $dir/memcached.log)"
}

# ini_quote VALUE -> a double-quoted php-fpm ini value
ini_quote() {
  local v=$1
  [[ "$v" != *'"'* ]] || die "ini value may not contain a double quote: $v"
  printf '"%s"' "$v"
}

write_pod_conf() {
  local pod=$1 dir=$2 listen=$3
  local user_lines=""
  if [[ "$(id -u)" -eq 0 && "$STACK_USER" != root ]]; then
    user_lines="user = $STACK_USER
group = $STACK_GROUP
listen.owner = $STACK_USER
listen.group = $STACK_GROUP"
  fi
  cat >"$dir/php-fpm.conf" <<EOF
; generated by deploy/local/stack.sh -- edits are overwritten by the next "up"
[global]
pid = $dir/php-fpm.pid
error_log = $dir/php-fpm.log
log_level = notice
daemonize = yes
process_control_timeout = 5s

[$pod]
$user_lines
listen = $listen
listen.mode = 0660
pm = static
pm.max_children = $FPM_WORKERS
clear_env = no
env[POD_NAME] = $pod
catch_workers_output = yes
decorate_workers_output = no
access.log = $dir/access.log
env[STICKLESS_URL] = $(ini_quote "$(pod_save_path "$pod")")
$(pod_session_lines "$pod")
php_admin_flag[log_errors] = on
php_admin_value[error_log] = $dir/php-error.log
EOF
}

# pod_session_lines POD -> the pool's session handler settings. With
# POD_SESSION_INI=none there are none: php.ini's default handler stays, and
# the application picks its own (session_set_save_handler() with a
# Stickless\SessionHandler object built from $STICKLESS_URL), which a
# php_admin_value[session.save_handler] would silently override;
# POD_SESSION_INI=value sets them as php.ini would (php_value), and the
# application may change them.
pod_session_lines() {
  local directive=php_admin_value
  case "${POD_SESSION_INI:-admin}" in
    none) return 0 ;;
    value) directive=php_value ;;
  esac
  printf '%s[session.save_handler] = %s\n' "$directive" "$(ini_quote "$(pod_handler "$1")")"
  printf '%s[session.save_path] = %s\n' "$directive" "$(ini_quote "$(pod_save_path "$1")")"
}

# pod_save_path POD -> session.save_path for POD: the ports substituted at
# `up`, and "{pod}" replaced by the pod's name.
pod_save_path() {
  local entry
  entry=$(pod_entry "$1")
  if [[ -n "$entry" ]]; then
    printf '%s\n' "$(resolve_ports "${entry#*=}")"
    return
  fi
  printf '%s\n' "${SESSION_SAVE_PATH_RESOLVED//\{pod\}/$1}"
}

# pod_handler POD -> session.save_handler for POD (POD_HANDLERS, else SESSION_HANDLER)
pod_handler() {
  local entry
  entry=$(pod_entry "$1")
  if [[ -n "$entry" ]]; then
    printf '%s\n' "${entry%%=*}"
    return
  fi
  printf '%s\n' "$SESSION_HANDLER"
}

# pod_entry POD -> POD's "handler=save_path" word of POD_HANDLERS, or nothing
pod_entry() {
  [[ -n "${POD_HANDLERS:-}" ]] || return 0
  local -a entries
  read -r -a entries <<<"$POD_HANDLERS"
  local letter=${1#pod-} letters=abcdefghijklmnopqrstuvwxyz
  local index=${letters%%"$letter"*}
  printf '%s\n' "${entries[${#index} % ${#entries[@]}]}"
}

# resolve_ports PATH -> PATH with {redis_port} and {memcached_port} filled in
resolve_ports() {
  local path=${1//\{redis_port\}/$REDIS_PORT}
  printf '%s\n' "${path//\{memcached_port\}/${MEMCACHED_PORT_STATE:-}}"
}

# The files handler needs its directories: the part of the save path after
# any "N;" or "N;MODE;" prefix.
make_session_dirs() {
  [[ "$SESSION_HANDLER" == files ]] || return 0
  local pod path
  for pod in $(pod_names); do
    path=$(pod_save_path "$pod")
    path=${path##*;}
    [[ -n "$path" ]] || continue
    mkdir -p "$path"
    if [[ "$(id -u)" -eq 0 && "$STACK_USER" != root ]]; then
      chown "$STACK_USER:$STACK_GROUP" "$path"
    fi
  done
}

fpm_args() {
  FPM_ARGS=()
  if [[ "$(id -u)" -eq 0 && "$STACK_USER" == root ]]; then
    FPM_ARGS+=(--allow-to-run-as-root)
  fi
  FPM_ARGS+=("${PHP_BASE_ARGS[@]}" "${EXT_ARGS[@]}")
  local kv
  for kv in ${PHP_DEFINES:-}; do
    FPM_ARGS+=(-d "$kv")
  done
}

pod_ready() {
  local dir=$1 listen=$2
  [[ -n "$(owned_pid fpm "$dir/php-fpm.pid")" ]] || return 1
  case "$listen" in
    /*) [[ -S "$listen" ]] ;;
    *) (exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null ;;
  esac
}

start_pods() {
  local pod dir listen sock_base="$STACK_DIR/pods"
  POD_LIST=""
  POD_LISTENS=""
  local mode=${POD_LISTEN:-unix}
  # sun_path holds 108 bytes; fall back to loopback ports for deep state dirs.
  if [[ "$mode" == unix && ${#sock_base} -gt 80 ]]; then
    log "state dir path too long for unix sockets; pods listen on loopback ports"
    mode=tcp
  fi
  for pod in $(pod_names); do
    dir="$STACK_DIR/pods/$pod"
    mkdir -p "$dir"
    if [[ "$mode" == unix ]]; then
      listen="$dir/php-fpm.sock"
    else
      listen="127.0.0.1:$(free_port)"
    fi
    : >"$dir/php-error.log"
    if [[ "$(id -u)" -eq 0 && "$STACK_USER" != root ]]; then
      chown "$STACK_USER:$STACK_GROUP" "$dir/php-error.log"
    fi
    write_pod_conf "$pod" "$dir" "$listen"
    # php-fpm daemonizes and only returns once its master is initialised
    # (non-zero when it failed to start).
    if ! "$PHP_FPM" "${FPM_ARGS[@]}" --fpm-config "$dir/php-fpm.conf" </dev/null >>"$dir/php-fpm.log" 2>&1; then
      tail -n 20 "$dir/php-fpm.log" >&2 || true
      die "php-fpm for $pod failed to start (see $dir/php-fpm.log)"
    fi
    wait_until "$READY_TIMEOUT" "$pod to listen on $listen" pod_ready "$dir" "$listen" ||
      die "$pod is not ready (see $dir/php-fpm.log)"
    log "$pod ready on $listen (pid $(read_pidfile "$dir/php-fpm.pid"))"
    POD_LIST+="$pod "
    POD_LISTENS+="$listen "
  done
}

# --- the Rust gateway (examples/axum-gateway) -------------------------------

# php_setting NAME_REGEX PHPINFO -> the local value of an ini setting in
# `php -i` output ("name => local => master").
php_setting() {
  sed -n 's/^'"$1"' => \(.*\) => .*$/\1/p' <<<"$2" | head -n 1
}

# plan_gateway SAVE_PATH -> GATEWAY_ON (0 or 1), and GW_HANDLER, GW_LIFETIME
# and GW_COOKIE: the pods' session.serialize_handler, gc_maxlifetime and name
# as their PHP resolves them (ini files, PHP_NO_INI, PHP_DEFINES), so the
# gateway reads and writes sessions exactly as the pods do. A reason not to
# run it is logged (GATEWAY=auto) or fatal (GATEWAY=1).
plan_gateway() {
  local save_path=$1 why="" info
  GATEWAY_ON=0
  [[ "$GATEWAY" != 0 ]] || return 0
  if [[ "$SESSION_HANDLER" != stickless ]]; then
    why="it speaks stickless, and session.save_handler is $SESSION_HANDLER"
  elif [[ "$save_path" == *"{pod}"* ]]; then
    why="the save path gives each pod sessions of its own ({pod})"
  elif [[ ! -x "$GATEWAY_BIN" ]]; then
    why="no $GATEWAY_BIN (cargo build --release -p stickless-axum-gateway)"
  else
    info=$("$PHP_FPM" "${FPM_ARGS[@]}" -i 2>&1) || die "php-fpm -i failed: $info"
    GW_HANDLER=$(php_setting 'session\.serialize_handler' "$info")
    GW_LIFETIME=$(php_setting 'session\.gc_maxlifetime' "$info")
    GW_COOKIE=$(php_setting 'session\.name' "$info")
    case "$GW_HANDLER" in
      php | php_serialize) ;;
      *) why="it reads session.serialize_handler php and php_serialize, not '$GW_HANDLER'" ;;
    esac
  fi
  if [[ -n "$why" ]]; then
    [[ "$GATEWAY" != 1 ]] || die "GATEWAY=1, but the gateway cannot run: $why"
    log "gateway not started: $why"
    return 0
  fi
  GATEWAY_ON=1
}

gateway_ready() {
  local pid
  pid=$(owned_pid gateway "$STACK_DIR/gateway/gateway.pid")
  [[ -n "$pid" ]] && pid_listens "$pid" "$GATEWAY_PORT" &&
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$GATEWAY_PORT/api/healthz" 2>/dev/null
}

gateway_dead() {
  local pid
  pid=$(read_pidfile "$STACK_DIR/gateway/gateway.pid")
  [[ -z "$pid" ]] || ! pid_running "$pid"
}

start_gateway() {
  local dir="$STACK_DIR/gateway" attempt fixed=${GATEWAY_PORT:-} i pid
  mkdir -p "$dir"
  for attempt in 1 2 3 4 5; do
    GATEWAY_PORT=${fixed:-$(free_port)}
    # It does not daemonize: in the background its PID is $!, which goes in
    # the pidfile; its working directory is $dir, which owned_pid checks. The
    # save path goes in its environment, not its arguments: it may hold a
    # password, and every user can read arguments in ps.
    (
      cd "$dir"
      export GATEWAY_SAVE_PATH=$SESSION_SAVE_PATH_RESOLVED
      exec nohup "$GATEWAY_BIN" --listen "127.0.0.1:$GATEWAY_PORT" \
        --serialize-handler "$GW_HANDLER" --gc-maxlifetime "$GW_LIFETIME" --cookie "$GW_COOKIE" \
        </dev/null >>"$dir/gateway.log" 2>&1
    ) &
    pid=$!
    printf '%s\n' "$pid" >"$dir/gateway.pid"
    # Ready once it answers its healthz; give up early if it exited (port taken).
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
      gateway_ready && {
        log "gateway ready on 127.0.0.1:$GATEWAY_PORT (pid $pid; serialize_handler $GW_HANDLER, cookie $GW_COOKIE)"
        return 0
      }
      gateway_dead && break
      sleep 0.1
    done
    gateway_dead || die "the gateway did not answer within ${READY_TIMEOUT}s (see $dir/gateway.log)"
    tail -n 3 "$dir/gateway.log" >&2 || true
    [[ -z "$fixed" ]] || die "the gateway failed to start on port $fixed (see $dir/gateway.log)"
    log "the gateway failed to start on port $GATEWAY_PORT (attempt $attempt); trying another port"
  done
  die "the gateway failed to start (see $dir/gateway.log)"
}

write_nginx_conf() {
  local dir=$1 user_line="" upstreams="" l gateway_upstream="" api fallback="=404"
  # A front controller gets what is not a file, with the query string.
  [[ -z "$FRONT_CONTROLLER" ]] || fallback="/$FRONT_CONTROLLER\$is_args\$args"
  if [[ "$(id -u)" -eq 0 ]]; then
    # nginx only honours (and otherwise warns about) "user" when run as root.
    user_line="user $STACK_USER $STACK_GROUP;"
  fi
  for l in $POD_LISTENS; do
    case "$l" in
      /*) upstreams+="        server unix:$l;"$'\n' ;;
      *) upstreams+="        server $l;"$'\n' ;;
    esac
  done
  # /api/ is the gateway's, whatever the file names under it (^~: no .php
  # regex match), and says so in JSON when it is not running.
  if [[ -n "$GATEWAY_PORT_STATE" ]]; then
    gateway_upstream="
    upstream gateway {
        server 127.0.0.1:$GATEWAY_PORT_STATE;
        keepalive 16;
    }
"
    api="proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;"
  else
    api="default_type application/json;
            return 503 '{\"error\": \"gateway_not_running\", \"message\": \"the Rust gateway is not part of this stack\"}\\n';"
  fi
  cat >"$dir/nginx.conf" <<EOF
# generated by deploy/local/stack.sh -- edits are overwritten by the next "up"
$user_line
worker_processes 1;
worker_rlimit_nofile $((NGINX_CONNECTIONS * 2 + 64));
pid $dir/nginx.pid;
error_log $dir/error.log warn;

events {
    worker_connections $NGINX_CONNECTIONS;
}

http {
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    default_type application/octet-stream;
    types {
        text/html html;
        text/css css;
        text/plain txt;
        application/javascript js;
        application/json json;
    }

    # Round-robin (nginx's default) across the pods: no stickiness, so every
    # request of a user may land on a different pod.
    upstream pods {
$upstreams    }
$gateway_upstream
    server {
        listen 127.0.0.1:$NGINX_PORT;
        server_name localhost;
        root $WWW_DIR;
        index index.php;

        location / {
            try_files \$uri \$uri/ $fallback;
        }

        location ^~ /api/ {
            $api
        }

        location ~ \.php\$ {
            try_files \$uri =404;
            fastcgi_pass pods;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_param SCRIPT_NAME \$fastcgi_script_name;
            fastcgi_param QUERY_STRING \$query_string;
            fastcgi_param REQUEST_METHOD \$request_method;
            fastcgi_param CONTENT_TYPE \$content_type;
            fastcgi_param CONTENT_LENGTH \$content_length;
            fastcgi_param REQUEST_URI \$request_uri;
            fastcgi_param DOCUMENT_URI \$document_uri;
            fastcgi_param DOCUMENT_ROOT \$document_root;
            fastcgi_param SERVER_PROTOCOL \$server_protocol;
            fastcgi_param REQUEST_SCHEME \$scheme;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE nginx/\$nginx_version;
            fastcgi_param REMOTE_ADDR \$remote_addr;
            fastcgi_param REMOTE_PORT \$remote_port;
            fastcgi_param SERVER_ADDR \$server_addr;
            fastcgi_param SERVER_PORT \$server_port;
            fastcgi_param SERVER_NAME \$server_name;
        }
    }
}
EOF
}

nginx_ready() {
  [[ -n "$(owned_pid nginx "$STACK_DIR/nginx/nginx.pid")" ]] &&
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$NGINX_PORT/hello.php" 2>/dev/null
}

start_nginx() {
  local dir="$STACK_DIR/nginx" attempt fixed=${NGINX_PORT:-}
  mkdir -p "$dir/tmp"
  for attempt in 1 2 3 4 5; do
    NGINX_PORT=${fixed:-$(free_port)}
    [[ "$NGINX_PORT" != 80 ]] || die "refusing to use port 80 (the system nginx)"
    write_nginx_conf "$dir"
    # nginx binds before it daemonizes, so a taken port is a non-zero exit.
    if "$NGINX" -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf" </dev/null >>"$dir/startup.log" 2>&1; then
      wait_until "$READY_TIMEOUT" "nginx on 127.0.0.1:$NGINX_PORT" nginx_ready ||
        die "nginx is not serving (see $dir/error.log)"
      log "nginx ready on 127.0.0.1:$NGINX_PORT (pid $(read_pidfile "$dir/nginx.pid"))"
      return 0
    fi
    [[ -z "$fixed" ]] || { tail -n 5 "$dir/startup.log" >&2; die "nginx failed to start (see $dir/error.log)"; }
    log "nginx failed to start on port $NGINX_PORT (attempt $attempt); trying another port"
  done
  tail -n 5 "$dir/startup.log" >&2 || true
  die "nginx failed to start (see $dir/error.log)"
}

# Every pod must answer healthz.php through nginx with the configured save
# handler, and that handler must be able to open and read a session (a handler
# name no extension registers is only noticed at session_start).
SEEN_PODS=""
all_pods_answer() {
  local out body code pod handler session p
  out=$(curl -sS --max-time 5 -w '\n%{http_code}' "http://127.0.0.1:$NGINX_PORT/healthz.php" 2>/dev/null) || return 1
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  pod=$(json_field pod "$body")
  [[ -n "$pod" ]] || return 1
  handler=$(json_field handler "$body")
  session=$(json_field session "$body")
  # POD_SESSION_INI=none leaves the handler to php.ini and the application.
  local expected
  expected=$(pod_handler "$pod")
  [[ "${POD_SESSION_INI:-admin}" == none ]] && expected=$handler
  if [[ "$code" != 200 || "$handler" != "$expected" || "$session" != ok ]]; then
    log "$pod is unhealthy (HTTP $code): $body"
    log "expected session.save_handler '$expected' to work; see $STACK_DIR/pods/$pod/"
    return 2
  fi
  [[ " $SEEN_PODS " == *" $pod "* ]] || SEEN_PODS+=" $pod"
  for p in $POD_LIST; do
    [[ " $SEEN_PODS " == *" $p "* ]] || return 1
  done
}

# json_field NAME JSON -> the string value of "NAME" in a flat JSON object
json_field() {
  sed -n 's/.*"'"$1"'": *"\([^"]*\)".*/\1/p' <<<"$2"
}

wait_all_pods() {
  local i rc
  for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
    rc=0
    all_pods_answer || rc=$?
    ((rc == 0)) && return 0
    ((rc == 2)) && die "a pod cannot use session.save_handler=$SESSION_HANDLER"
    sleep 0.1
  done
  die "not every pod answered through nginx within ${READY_TIMEOUT}s (seen:${SEEN_PODS:- none})"
}

# resolve_extensions: PHP_EXTENSION (space-separated) -> EXT_LIST. A word with
# a "/" (or naming a file here) is a path, made absolute and required to
# exist; any other word is a name PHP looks up in its extension_dir.
resolve_extensions() {
  local e
  EXT_LIST=()
  for e in $PHP_EXTENSION; do
    if [[ "$e" == */* || -f "$e" ]]; then
      [[ "$e" == /* ]] || e="$PWD/$e"
      if [[ ! -f "$e" ]]; then
        [[ "$e" != */libstickless_php.so ]] || die "extension not found: $e (build it: make build)"
        die "extension not found: $e"
      fi
    fi
    EXT_LIST+=("$e")
  done
}

# Loading a missing/broken .so only warns at startup; catch it before the pods
# start. Load the extensions one by one, in order, on top of the ini files:
# one the ini files already load is dropped ("Module already loaded" is a
# startup warning too); any other warning is fatal. -> EXT_ARGS
check_extensions() {
  local e out
  EXT_ARGS=()
  EXT_LIST_LOADED=""
  for e in "${EXT_LIST[@]}"; do
    out=$("$PHP_FPM" "${PHP_BASE_ARGS[@]}" "${EXT_ARGS[@]}" -d "extension=$e" -m 2>&1) ||
      die "php-fpm -m failed with extension $e: $out"
    if grep -qi 'already loaded' <<<"$out"; then
      log "extension $e is already loaded by PHP's ini files; not loading it again"
      continue
    fi
    if grep -qiE 'unable to load|warning|fatal' <<<"$out"; then
      printf '%s\n' "$out" | grep -iE 'unable to load|warning|fatal' >&2
      if grep -q 'undefined symbol' <<<"$out"; then
        log "an extension that $e needs (e.g. igbinary) must come before it in PHP_EXTENSION"
      fi
      die "php-fpm cannot load $e${EXT_ARGS[*]:+ after ${EXT_ARGS[*]}}"
    fi
    EXT_ARGS+=(-d "extension=$e")
    EXT_LIST_LOADED+="$e "
  done
  # The handler must be registered by now, or every session_start will fail.
  case "$SESSION_HANDLER" in
    files | user) return 0 ;;
  esac
  out=$("$PHP_FPM" "${PHP_BASE_ARGS[@]}" "${EXT_ARGS[@]}" -i 2>&1) || die "php-fpm -i failed: $out"
  if ! grep -qE "^Registered save handlers => .*\b$SESSION_HANDLER\b" <<<"$out"; then
    log "$(grep -E '^Registered save handlers' <<<"$out" || echo 'no session module')"
    die "no loaded extension registers session.save_handler '$SESSION_HANDLER' (set PHP_EXTENSION)"
  fi
}

# --- commands ----------------------------------------------------------------

is_anything_running() {
  [[ -n "$(owned_pid redis "$STACK_DIR/redis/redis.pid")" ]] && return 0
  [[ -n "$(owned_pid nginx "$STACK_DIR/nginx/nginx.pid")" ]] && return 0
  [[ -n "$(owned_pid memcached "$STACK_DIR/memcached/memcached.pid")" ]] && return 0
  [[ -n "$(owned_pid gateway "$STACK_DIR/gateway/gateway.pid")" ]] && return 0
  local f
  for f in "$STACK_DIR"/pods/*/php-fpm.pid; do
    [[ -e "$f" ]] || continue
    [[ -n "$(owned_pid fpm "$f")" ]] && return 0
  done
  return 1
}

cmd_up() {
  resolve_bins
  PODS=${PODS:-3}
  if ! [[ "$PODS" =~ ^[0-9]+$ ]] || ((PODS < 1 || PODS > 26)); then
    die "PODS must be 1..26"
  fi
  FPM_WORKERS=${FPM_WORKERS:-2}
  if ! [[ "$FPM_WORKERS" =~ ^[0-9]+$ ]] || ((FPM_WORKERS < 1)); then
    die "FPM_WORKERS must be >= 1"
  fi
  SESSION_HANDLER=${SESSION_HANDLER:-stickless}
  SESSION_PREFIX=${SESSION_PREFIX:-demo:}
  [[ "$SESSION_HANDLER" =~ ^[A-Za-z0-9_]+$ ]] || die "SESSION_HANDLER must be a handler name, not '$SESSION_HANDLER'"
  # Unset = the handler's default; set but empty = load nothing.
  case "$SESSION_HANDLER" in
    stickless) PHP_EXTENSION=${PHP_EXTENSION-$TARGET_DIR/release/libstickless_php.so} ;;
    # phpredis and php-memcached are built against igbinary (and msgpack):
    # without the ini files those must be loaded first.
    redis) PHP_EXTENSION=${PHP_EXTENSION-igbinary redis} ;;
    memcached) PHP_EXTENSION=${PHP_EXTENSION-igbinary msgpack memcached} ;;
    *) PHP_EXTENSION=${PHP_EXTENSION-} ;;
  esac
  POD_SESSION_INI=${POD_SESSION_INI:-admin}
  [[ "$POD_SESSION_INI" =~ ^(admin|value|none)$ ]] || die "POD_SESSION_INI must be admin, value or none"
  PHP_NO_INI=${PHP_NO_INI:-0}
  PHP_BASE_ARGS=()
  case "$PHP_NO_INI" in
    0) ;;
    1) PHP_BASE_ARGS=(-n) ;;
    *) die "PHP_NO_INI must be 0 or 1" ;;
  esac
  local save_path=${SESSION_SAVE_PATH:-}
  if [[ -z "$save_path" ]]; then
    case "$SESSION_HANDLER" in
      stickless) save_path="redis://127.0.0.1:{redis_port}/0?prefix=$SESSION_PREFIX" ;;
      redis) save_path="tcp://127.0.0.1:{redis_port}?prefix=$SESSION_PREFIX" ;;
      memcached) save_path="127.0.0.1:{memcached_port}" ;;
      # One directory per pod: what "sessions on local disk" means once
      # there is more than one server.
      files) save_path="$STACK_DIR/sessions/{pod}" ;;
      *) die "no default session.save_path for handler '$SESSION_HANDLER'; set SESSION_SAVE_PATH" ;;
    esac
  fi
  local default_memcached=0
  if [[ "$SESSION_HANDLER" == memcached || "$save_path" == *"{memcached_port}"* ]]; then
    default_memcached=1
  fi
  MEMCACHED=${MEMCACHED:-$default_memcached}
  [[ "$MEMCACHED" == 0 || "$MEMCACHED" == 1 ]] || die "MEMCACHED must be 0 or 1"
  if [[ "$MEMCACHED" == 0 && "$save_path" == *"{memcached_port}"* ]]; then
    die "SESSION_SAVE_PATH uses {memcached_port} but MEMCACHED=0"
  fi
  MEMCACHED_MEMORY=${MEMCACHED_MEMORY:-64}
  [[ "$MEMCACHED_MEMORY" =~ ^[1-9][0-9]*$ ]] || die "MEMCACHED_MEMORY must be a number of MB"
  if [[ "$MEMCACHED" == 1 ]]; then
    MEMCACHED_SERVER=$(find_bin "${MEMCACHED_SERVER:-}" memcached) ||
      die "memcached not found (run scripts/install-deps.sh)"
  fi
  NGINX_CONNECTIONS=${NGINX_CONNECTIONS:-4096}
  if ! [[ "$NGINX_CONNECTIONS" =~ ^[0-9]+$ ]] || ((NGINX_CONNECTIONS < 16)); then
    die "NGINX_CONNECTIONS must be >= 16"
  fi
  GATEWAY=${GATEWAY:-auto}
  case "$GATEWAY" in
    auto | 0 | 1) ;;
    *) die "GATEWAY must be auto, 0 or 1" ;;
  esac
  GATEWAY_BIN=${GATEWAY_BIN:-$TARGET_DIR/release/axum-gateway}
  STACK_USER=${STACK_USER:-root}
  if [[ "$(id -u)" -eq 0 ]]; then
    id "$STACK_USER" >/dev/null 2>&1 || die "STACK_USER '$STACK_USER' does not exist"
    STACK_GROUP=$(id -gn "$STACK_USER")
  else
    STACK_USER=$(id -un)
    STACK_GROUP=$(id -gn)
  fi
  [[ -d "$WWW_DIR" ]] || die "missing $WWW_DIR"
  local probe
  for probe in hello.php healthz.php; do
    [[ -f "$WWW_DIR/$probe" ]] || die "DOC_ROOT $WWW_DIR has no $probe (the readiness probes)"
  done
  FRONT_CONTROLLER=${FRONT_CONTROLLER:-}
  FRONT_CONTROLLER=${FRONT_CONTROLLER#/}
  if [[ -n "$FRONT_CONTROLLER" ]]; then
    [[ "$FRONT_CONTROLLER" =~ ^[A-Za-z0-9_./-]+\.php$ && "$FRONT_CONTROLLER" != *..* ]] ||
      die "FRONT_CONTROLLER must be a .php path inside DOC_ROOT, not '$FRONT_CONTROLLER'"
    [[ -f "$WWW_DIR/$FRONT_CONTROLLER" ]] || die "FRONT_CONTROLLER: no $WWW_DIR/$FRONT_CONTROLLER"
  fi

  if is_anything_running; then
    die "a stack is already running in $STACK_DIR; run '$0 down' first"
  fi
  resolve_extensions
  check_extensions
  fpm_args
  plan_gateway "$save_path"

  # Fresh state (only our own sub-directories: STACK_DIR itself may be shared).
  mkdir -p "$STACK_DIR"
  rm -rf "$STACK_DIR/redis" "$STACK_DIR/memcached" "$STACK_DIR/pods" "$STACK_DIR/gateway" \
    "$STACK_DIR/nginx" "$STACK_DIR/sessions" "$STATE_FILE"
  # Workers running as STACK_USER reach their sockets, pidfiles and session
  # directories through STACK_DIR (a mktemp -d one is 0700).
  if [[ "$(id -u)" -eq 0 && "$STACK_USER" != root ]] && command -v runuser >/dev/null 2>&1; then
    runuser -u "$STACK_USER" -- test -x "$STACK_DIR" -a -r "$WWW_DIR/hello.php" ||
      die "STACK_USER $STACK_USER cannot reach $STACK_DIR or read $WWW_DIR (chmod o+x the directories on the way)"
  fi

  # From here on, a failure or Ctrl-C tears down whatever was started.
  trap 'rc=$?; trap - EXIT INT TERM; if ((rc != 0)); then log "up failed; tearing down"; cmd_down || true; fi; exit $rc' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  log "state dir $STACK_DIR; handler $SESSION_HANDLER${EXT_ARGS[*]:+; ${EXT_ARGS[*]}}${PHP_BASE_ARGS[*]:+; php-fpm ${PHP_BASE_ARGS[*]}}"
  start_redis
  MEMCACHED_PORT_STATE=""
  if [[ "$MEMCACHED" == 1 ]]; then
    start_memcached
    MEMCACHED_PORT_STATE=$MEMCACHED_PORT
  fi
  SESSION_SAVE_PATH_RESOLVED=${save_path//\{redis_port\}/$REDIS_PORT}
  SESSION_SAVE_PATH_RESOLVED=${SESSION_SAVE_PATH_RESOLVED//\{memcached_port\}/$MEMCACHED_PORT_STATE}
  make_session_dirs
  start_pods
  GATEWAY_PORT_STATE=""
  if [[ "$GATEWAY_ON" == 1 ]]; then
    start_gateway
    GATEWAY_PORT_STATE=$GATEWAY_PORT
  fi
  start_nginx
  wait_all_pods

  URL="http://127.0.0.1:$NGINX_PORT/"
  cat >"$STATE_FILE" <<EOF
# written by deploy/local/stack.sh up
URL='$URL'
REDIS_PORT='$REDIS_PORT'
MEMCACHED_PORT='$MEMCACHED_PORT_STATE'
NGINX_PORT='$NGINX_PORT'
GATEWAY_PORT='$GATEWAY_PORT_STATE'
POD_LIST='${POD_LIST% }'
POD_LISTENS='${POD_LISTENS% }'
SESSION_HANDLER='$SESSION_HANDLER'
SESSION_SAVE_PATH='$SESSION_SAVE_PATH_RESOLVED'
PHP_EXTENSION='$PHP_EXTENSION'
PHP_EXTENSION_LOADED='${EXT_LIST_LOADED% }'
PHP_NO_INI='$PHP_NO_INI'
EOF
  trap - EXIT INT TERM
  log "up: ${PODS} pods x ${FPM_WORKERS} workers behind nginx; session.save_handler=$SESSION_HANDLER"
  log "     session.save_path=$SESSION_SAVE_PATH_RESOLVED"
  if [[ -n "$GATEWAY_PORT_STATE" ]]; then
    log "     ${URL}api/ -> Rust gateway on 127.0.0.1:$GATEWAY_PORT_STATE, same sessions"
  fi
  printf '%s\n' "$URL"
}

cmd_down() {
  local f pod rc=0
  if [[ ! -d "$STACK_DIR" ]]; then
    log "nothing to stop ($STACK_DIR does not exist)"
    return 0
  fi
  stop_component nginx nginx "$STACK_DIR/nginx/nginx.pid" QUIT || rc=1
  # SIGTERM: graceful; requests in flight commit or release their locks.
  stop_component gateway gateway "$STACK_DIR/gateway/gateway.pid" TERM || rc=1
  for f in "$STACK_DIR"/pods/*/php-fpm.pid; do
    [[ -e "$f" ]] || continue
    pod=$(basename "$(dirname "$f")")
    # SIGQUIT: graceful; workers finish their request, then master exits.
    stop_component "$pod" fpm "$f" QUIT || rc=1
  done
  stop_component memcached memcached "$STACK_DIR/memcached/memcached.pid" TERM || rc=1
  stop_component redis redis "$STACK_DIR/redis/redis.pid" TERM || rc=1
  rm -f "$STATE_FILE" "$STACK_DIR"/pods/*/php-fpm.sock
  if ((rc == 0)); then
    log "down: everything stopped"
  fi
  return "$rc"
}

cmd_status() {
  local up=0 total=0 pid f pod
  if ! load_state; then
    if is_anything_running; then
      log "no $STATE_FILE but processes are running (an 'up' in progress or failed?)"
      return 1
    fi
    echo "stopped ($STACK_DIR)"
    return 3
  fi
  REDIS_CLI=$(find_bin "${REDIS_CLI:-}" redis-cli) || REDIS_CLI=redis-cli

  total=$((total + 1))
  pid=$(owned_pid redis "$STACK_DIR/redis/redis.pid")
  if [[ -n "$pid" && "$("$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; then
    printf '%-9s up    pid %-7s 127.0.0.1:%s\n' redis "$pid" "$REDIS_PORT"
    up=$((up + 1))
  else
    printf '%-9s DOWN  pid %-7s 127.0.0.1:%s\n' redis "${pid:--}" "$REDIS_PORT"
  fi

  if [[ -n "${MEMCACHED_PORT:-}" ]]; then
    total=$((total + 1))
    pid=$(owned_pid memcached "$STACK_DIR/memcached/memcached.pid")
    if [[ -n "$pid" ]] && memcached_ready; then
      printf '%-9s up    pid %-7s 127.0.0.1:%s\n' memcached "$pid" "$MEMCACHED_PORT"
      up=$((up + 1))
    else
      printf '%-9s DOWN  pid %-7s 127.0.0.1:%s\n' memcached "${pid:--}" "$MEMCACHED_PORT"
    fi
  fi

  if [[ -n "${GATEWAY_PORT:-}" ]]; then
    total=$((total + 1))
    pid=$(owned_pid gateway "$STACK_DIR/gateway/gateway.pid")
    if [[ -n "$pid" ]] && gateway_ready; then
      printf '%-9s up    pid %-7s 127.0.0.1:%s\n' gateway "$pid" "$GATEWAY_PORT"
      up=$((up + 1))
    else
      printf '%-9s DOWN  pid %-7s 127.0.0.1:%s\n' gateway "${pid:--}" "$GATEWAY_PORT"
    fi
  fi

  local listens i=0
  read -r -a listens <<<"$POD_LISTENS"
  for pod in $POD_LIST; do
    total=$((total + 1))
    f="$STACK_DIR/pods/$pod/php-fpm.pid"
    pid=$(owned_pid fpm "$f")
    if [[ -n "$pid" ]]; then
      printf '%-9s up    pid %-7s %s\n' "$pod" "$pid" "${listens[i]}"
      up=$((up + 1))
    else
      printf '%-9s DOWN  pid %-7s %s\n' "$pod" - "${listens[i]}"
    fi
    i=$((i + 1))
  done

  total=$((total + 1))
  pid=$(owned_pid nginx "$STACK_DIR/nginx/nginx.pid")
  if [[ -n "$pid" ]] && curl -fsS -o /dev/null --max-time 2 "${URL}hello.php" 2>/dev/null; then
    printf '%-9s up    pid %-7s %s\n' nginx "$pid" "$URL"
    up=$((up + 1))
  else
    printf '%-9s DOWN  pid %-7s %s\n' nginx "${pid:--}" "$URL"
  fi
  echo "handler: $SESSION_HANDLER  save_path: $SESSION_SAVE_PATH${PHP_EXTENSION:+  extension: $PHP_EXTENSION}${PHP_NO_INI:+  no_ini: $PHP_NO_INI}"

  if ((up == total)); then
    return 0
  elif ((up == 0)); then
    return 3
  fi
  return 1
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
