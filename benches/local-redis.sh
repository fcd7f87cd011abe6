# Sourced by the bench scripts: starts a throw-away redis-server on a free
# loopback port (never 6379), waits for it, and stops it by PID on exit.
# Sets `port`. Arguments: a command prefix to run it under (taskset …).
local_redis() {
  local_redis_dir=$(mktemp -d)
  port=$(php -n -r '$s = stream_socket_server("tcp://127.0.0.1:0"); echo parse_url("tcp://" . stream_socket_get_name($s, false), PHP_URL_PORT);')
  "$@" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$local_redis_dir" --daemonize no >"$local_redis_dir/redis.log" 2>&1 &
  local_redis_pid=$!
  trap 'kill "$local_redis_pid" 2>/dev/null; wait "$local_redis_pid" 2>/dev/null; rm -rf "$local_redis_dir"' EXIT
  for _ in $(seq 1 200); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return
    sleep 0.05
  done
  echo "redis-server did not start on port $port: $(tail -3 "$local_redis_dir/redis.log")" >&2
  exit 1
}
