#!/usr/bin/env bash
# Installs the Debian packages that building stickless and running the local
# demo stack (deploy/local/stack.sh) need. Idempotent: when everything is
# already installed it touches nothing (no `apt-get update` either).
#
# It never starts a service. Debian's postinst scripts would normally start
# redis-server (port 6379) and nginx (port 80); while installing, a temporary
# policy-rc.d tells them not to (unless the machine already has one). Our stack
# never uses those system instances anyway.
#
# Knobs (environment):
#   EXTRA_PACKAGES   more Debian packages to install, space-separated
set -euo pipefail

# What we need, and why:
#   php8.2-dev       php-config + headers, for ext-php-rs' build script
#   clang, libclang-dev  bindgen (ext-php-rs) needs libclang
#   php8.2-cli       the build script runs `php`; the stack uses it to pick free ports
#   php8.2-fpm       the "pods"
#   php8.2-redis     phpredis, the comparison/fallback session handler
#   redis-server     (pulls redis-tools for redis-cli)
#   redis-tools      redis-cli, which the tests use to form a Redis Cluster
#   openssl          the TLS tests generate a throw-away CA and certificates
#   nginx            the round-robin load balancer
#   curl             readiness checks and the demo client
#   make             the top-level Makefile
# and for the multi-handler load benchmark (stack.sh SESSION_HANDLER=...):
#   php8.2-memcached php-memcached, the memcached session handler to compare with
#   memcached        its server; stack.sh starts its own on a free loopback port
#   wrk              a stock HTTP load generator, to cross-check our own numbers
# and for PHP's own session tests (scripts/php-src-tests.sh, tests/php-src/):
#   php8.2-cgi       run-tests.php runs the tests with --COOKIE--/--GET--/--POST-- on php-cgi
#   gnupg, gpgv, xz-utils  gpg --dearmor and gpgv for the upstream tarball's signature; tar -J
#   debian-keyring   the source package's .dsc signature, when the mirror's index has moved on
# and for the Debian 13 / sid roots of scripts/platform.sh (make test-trixie):
#   debootstrap      builds them under target/platform/
# and for checking deploy/kubernetes/ offline (make k8s-validate):
#   python3-venv     the venv under target/ that kubernetes-validate (PyPI) goes into
# and for checking Stickless\metrics()' output (tests/tests/pod_metrics.rs):
#   prometheus       its promtool, for `promtool check metrics`
# and for phpredis 6.2, the benchmark's second baseline (scripts/build-phpredis.sh):
#   php8.2-igbinary  its headers (phpredis is built with igbinary, like Debian's)
#   libzstd-dev, liblz4-dev  its zstd and lz4 session compression
packages=(
  php8.2-dev php8.2-cli php8.2-fpm php8.2-redis php8.2-memcached
  clang libclang-dev
  redis-server redis-tools openssl memcached nginx curl make wrk
  php8.2-cgi gnupg gpgv xz-utils debian-keyring
  debootstrap
  python3-venv
  prometheus
  php8.2-igbinary libzstd-dev liblz4-dev
)
# shellcheck disable=SC2206 # word splitting is the point
packages+=(${EXTRA_PACKAGES:-})

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
else
  sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    sudo=(sudo)
  fi

  # Keep postinst scripts from starting redis/nginx/php-fpm system services.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# temporary, from stickless scripts/install-deps.sh\nexit 101\n' |
      "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    trap '"${sudo[@]}" rm -f "$policy"' EXIT
  fi

  echo "install-deps: installing: ${missing[*]}"
  apt_env=(env DEBIAN_FRONTEND=noninteractive)
  "${sudo[@]}" "${apt_env[@]}" apt-get update -q
  "${sudo[@]}" "${apt_env[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: warning: cargo is not on PATH; building the extension needs a Rust toolchain (rustup)" >&2
fi
