#!/usr/bin/env bash
# Debian roots for building and testing stickless on a newer platform than
# the host's: Debian 13 "trixie" (PHP 8.4, Redis 8, Valkey 8.1, Symfony 6.4,
# Laravel 10) or sid (PHP 8.4, Valkey 9, Symfony 7, Laravel 13).
#
#   scripts/platform.sh setup SUITE            debootstrap target/platform/SUITE once, then
#                                              install its packages (again when the list changes)
#   scripts/platform.sh run SUITE -- CMD...    run CMD inside it
#   scripts/platform.sh shell SUITE            an interactive shell inside it
#   scripts/platform.sh status                 which roots exist, what they hold
#
# `run` uses private mount and PID namespaces: /proc, /dev, /sys, /tmp, the
# workspace (at the same path, /work/main or wherever this clone is) and the
# host's Rust toolchain ($CARGO_HOME, $RUSTUP_HOME) are mounted inside the
# namespace only, so nothing shows in the host's mount table, and every
# process started inside dies with it. CARGO_TARGET_DIR is target/SUITE, so
# the host's target/release is left alone. No service is ever started: the
# root has a policy-rc.d that says no, and tests start their own servers.
#
# Everything lives under target/platform/ (git-ignored):
#   SUITE/         the root; .stickless-debootstrap marks a finished debootstrap,
#                  .stickless-packages lists what apt installed
#   cache/SUITE/   the .debs of debootstrap and apt, so a rebuilt root downloads nothing
#
# Knobs (environment): MIRROR, the Debian mirror [the one the host's apt uses,
# else http://deb.debian.org/debian]; PLATFORM_DIR [<repo>/target/platform];
# PLATFORM_TARGET_DIR, CARGO_TARGET_DIR inside [<repo>/target/SUITE].
# Needs root, unshare (util-linux) and debootstrap (installed with apt if missing).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLATFORM_DIR=${PLATFORM_DIR:-$REPO/target/platform}

log() { printf 'platform: %s\n' "$*" >&2; }
die() {
  printf 'platform: error: %s\n' "$*" >&2
  exit 1
}

# What each suite gets on top of debootstrap's minbase.
#   php8.4-*, php-redis   the PHP under test, and phpredis to compare with; php8.4-cgi,
#                         gnupg, gpgv, xz-utils: PHP's own session tests (scripts/php-src-tests.sh);
#                         debian-keyring: their source from the pool when the index has moved on
#   clang, libclang-dev   bindgen (ext-php-rs); gcc, libc6-dev: cc and the linker for rustc
#   pkgconf, libssl-dev   openssl-sys; redis-*, valkey-*: the servers the tests start
#   procps, mount         kill(1), mount(8) (tests bind a resolv.conf of their own)
#   nginx, curl, openssl  the php-fpm pod stack and the TLS tests' CA; prometheus: its
#                         promtool checks Stickless\metrics() (tests/pod_metrics.rs)
#   php-symfony-*, php-laravel-framework   framework handlers, from Debian's packages;
#                         composer: Composer\InstalledVersions, which Symfony's container needs
PACKAGES=(
  php8.4-cli php8.4-fpm php8.4-dev php-redis php8.4-cgi gnupg gpgv xz-utils debian-keyring
  clang libclang-dev gcc libc6-dev pkgconf libssl-dev make
  redis-server redis-tools valkey-server valkey-tools
  nginx curl openssl ca-certificates procps mount prometheus
  php-symfony-framework-bundle php-symfony-http-kernel php-symfony-http-foundation
  php-symfony-routing php-symfony-dependency-injection php-symfony-config
  php-laravel-framework composer
)

# The same list for both: Debian keeps these names across releases.
suite_packages() { printf '%s\n' "${PACKAGES[@]}"; }

# The Debian mirror the host's apt uses (first enabled .../debian URI), so a
# machine behind a local mirror keeps using it.
host_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v '^[[:space:]]*#' | grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ') || true
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

need_root() {
  [[ "$(id -u)" -eq 0 ]] || die "run as root (debootstrap, chroot and mount namespaces need it)"
  command -v unshare >/dev/null || die "unshare (util-linux) is missing"
}

root_of() { printf '%s/%s\n' "$PLATFORM_DIR" "$1"; }

# lock SUITE -s|-x: setup (-x) excludes runs (-s) of the same root: apt must
# not change it under a running test.
lock() {
  mkdir -p "$PLATFORM_DIR"
  exec 9>"$PLATFORM_DIR/.$1.lock"
  flock -n "$2" 9 || { log "waiting for another setup or run of $1"; flock "$2" 9; }
}

# in_root ROOT CMD...: CMD inside ROOT, in new mount and PID namespaces.
# Extra bind mounts come from the BINDS array ("SRC:DST" pairs, DST in ROOT).
in_root() {
  local root=$1
  shift
  # shellcheck disable=SC2016 # expanded by the inner bash
  local inner='
    set -e
    root=$1; wd=$2; nbinds=$3; shift 3
    # The root a mount point of its own, so that unshare --propagation works inside.
    mount --bind "$root" "$root"
    mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
    for ((i = 0; i < nbinds; i++)); do
      src=${1%%:*}; dst=$root${1#*:}; shift
      if [[ -d "$src" ]]; then mkdir -p "$dst"; else [[ -e "$dst" ]] || touch "$dst"; fi
      mount --bind "$src" "$dst"
    done
    # Not exec: this shell stays PID 1 and reaps orphans (daemons started by tests).
    chroot "$root" /usr/bin/env -i --chdir="$wd" "$@"
  '
  # The host's name resolution, for apt and cargo.
  local binds=() f
  for f in /etc/resolv.conf /etc/hosts; do
    [[ -e "$f" ]] && binds+=("$(readlink -f "$f"):$f")
  done
  binds+=(${BINDS[@]+"${BINDS[@]}"})
  unshare --mount --propagation private --pid --fork --kill-child \
    bash -c "$inner" platform "$root" "${WORKDIR:-/}" "${#binds[@]}" "${binds[@]}" "$@"
}

# The environment inside: the host's toolchain first on PATH, a target dir of
# the suite's own, and a few pass-through variables.
inner_env() {
  local suite=$1 var
  ENV=(HOME="$HOME" LANG=C.UTF-8 TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive
    PATH="$CARGO_HOME/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    CARGO_HOME="$CARGO_HOME" RUSTUP_HOME="$RUSTUP_HOME"
    CARGO_TARGET_DIR="${PLATFORM_TARGET_DIR:-$REPO/target/$suite}" STICKLESS_PLATFORM="$suite")
  for var in $(compgen -e); do
    case "$var" in
      CI | RUST_BACKTRACE | RUST_LOG | RUST_TEST_THREADS | CARGO_TERM_* | CARGO_BUILD_JOBS | STICKLESS_*)
        ENV+=("$var=${!var}") ;;
    esac
  done
}

cmd_setup() {
  local suite=$1 root cache mirror want
  need_root
  root=$(root_of "$suite")
  cache="$PLATFORM_DIR/cache/$suite"
  mirror=${MIRROR:-$(host_mirror)}
  want=$(printf 'suite %s\nmirror %s\n' "$suite" "$mirror"; suite_packages "$suite" | sort)
  lock "$suite" -x

  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap on the host (apt)"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
  fi
  [[ -e /usr/share/debootstrap/scripts/$suite ]] || die "this debootstrap does not know '$suite'"

  if [[ -f "$root/.stickless-debootstrap" ]]; then
    log "$root: debootstrap done earlier, reusing it"
  else
    if [[ -e "$root" ]]; then
      if awk -v r="$root" '$5 == r || index($5, r "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        die "something is mounted under $root; not deleting it"
      fi
      log "$root: incomplete (no .stickless-debootstrap), starting over"
      rm -rf --one-file-system "$root"
    fi
    mkdir -p "$root" "$cache/debootstrap"
    log "debootstrap --variant=minbase $suite $root $mirror"
    # In a mount namespace of its own: debootstrap mounts /proc and /sys in
    # the target, and they must not outlive it on the host.
    unshare --mount --propagation private \
      debootstrap --variant=minbase --cache-dir="$cache/debootstrap" "$suite" "$root" "$mirror"
    printf '#!/bin/sh\n# stickless platform root: never start a service\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    date -u +%FT%TZ >"$root/.stickless-debootstrap"
  fi

  if [[ "$(cat "$root/.stickless-packages" 2>/dev/null)" == "$want" ]]; then
    log "$root: packages up to date ($(suite_packages "$suite" | wc -l) requested)"
  else
    log "apt-get install in $root: $(suite_packages "$suite" | tr '\n' ' ')"
    mkdir -p "$cache/apt"
    echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"
    # The host's word on Release dates too: a frozen mirror's sid has expired.
    { echo 'APT::Install-Recommends "false";'; echo 'Acquire::Languages "none";'
      apt-config dump 2>/dev/null | grep -E '^Acquire::Check-(Valid-Until|Date) "false";' || true
    } >"$root/etc/apt/apt.conf.d/90stickless"
    [[ "$suite" == sid ]] || echo "deb $mirror $suite-updates main" >>"$root/etc/apt/sources.list"
    local BINDS=("$cache/apt:/var/cache/apt/archives") WORKDIR=/
    # shellcheck disable=SC2046 # one package per word
    in_root "$root" DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      sh -c 'apt-get update -q && apt-get install -y -q "$@"' apt $(suite_packages "$suite")
    printf '%s\n' "$want" >"$root/.stickless-packages"
  fi
  # The host's CA bundle (a proxy's own CA, if any, comes along for cargo and curl).
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  local BINDS=() WORKDIR=/
  # shellcheck disable=SC2016 # expanded inside
  log "$suite ready: $(in_root "$root" PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c \
    'echo "PHP $(php -r "echo PHP_VERSION;"), $(redis-server --version | cut -d" " -f1,3), $(valkey-server --version | cut -d" " -f1,3)"')"
}

cmd_run() {
  local suite=$1 root
  shift
  need_root
  root=$(root_of "$suite")
  [[ -f "$root/.stickless-packages" ]] || die "$root is not set up: run '$0 setup $suite' first"
  (($# > 0)) || die "usage: $0 run $suite -- COMMAND..."
  CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
  RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
  local BINDS=("$REPO:$REPO") dir
  # A PLATFORM_TARGET_DIR outside the workspace is bound in as well.
  if [[ -n "${PLATFORM_TARGET_DIR:-}" && "$PLATFORM_TARGET_DIR" != "$REPO"/* ]]; then
    mkdir -p "$PLATFORM_TARGET_DIR"
    BINDS+=("$PLATFORM_TARGET_DIR:$PLATFORM_TARGET_DIR")
  fi
  for dir in "$CARGO_HOME" "$RUSTUP_HOME"; do
    if [[ -d "$dir" ]]; then
      BINDS+=("$dir:$dir")
    else
      log "warning: $dir is missing; no Rust toolchain inside"
    fi
  done
  # The same directory as outside when it is in the workspace.
  local WORKDIR=$REPO
  [[ "$PWD" == "$REPO" || "$PWD" == "$REPO"/* ]] && WORKDIR=$PWD
  lock "$suite" -s
  inner_env "$suite"
  log "run in $suite ($WORKDIR): $*"
  in_root "$root" "${ENV[@]}" "$@"
}

cmd_status() {
  local suite root state
  for suite in trixie sid; do
    root=$(root_of "$suite") state="not set up"
    [[ -e "$root" ]] && state="incomplete at $root"
    [[ -f "$root/.stickless-packages" ]] && state="ready at $root (debootstrap $(cat "$root/.stickless-debootstrap"))"
    echo "$suite: $state"
  done
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

[[ "${1:-}" == status || "${2:-}" == trixie || "${2:-}" == sid ]] || usage
case "${1:-}" in
  setup)
    [[ $# -eq 2 ]] || usage
    cmd_setup "$2"
    ;;
  run)
    [[ $# -ge 2 ]] || usage
    suite=$2
    shift 2
    [[ "${1:-}" == -- ]] && shift
    cmd_run "$suite" "$@"
    ;;
  shell)
    [[ $# -eq 2 ]] || usage
    cmd_run "$2" bash -l
    ;;
  status) cmd_status ;;
  *) usage ;;
esac
