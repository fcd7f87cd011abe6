#!/usr/bin/env bash
# Builds stickless.so for the PHP whose php-config is given, checks that the
# result loads into that PHP, and installs it into its extension_dir.
#
#   deploy/docker/build-extension.sh [php-config] [--install]
#
# The same steps run in deploy/docker/Dockerfile's builder stage (against
# the official php:8.4-fpm image's upstream PHP) and in CI's trixie leg
# (against Debian's php8.4, `make test-trixie`), so the Dockerfile's path is
# tested where no container runtime exists. An extension loads into a PHP
# only when the Zend module API number and thread safety (ZTS or NTS) match
# those it was built against; the check below says so before PHP would.
set -euo pipefail

PHP_CONFIG=${1:-php-config}
INSTALL=${2:-}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}

PHP_CONFIG=$(command -v "$PHP_CONFIG") || { echo "build-extension: $PHP_CONFIG not found (install phpX.Y-dev)" >&2; exit 1; }
php_bin=$("$PHP_CONFIG" --php-binary)
api=$("$PHP_CONFIG" --phpapi)
version=$("$PHP_CONFIG" --version)
zts=$("$php_bin" -n -r 'echo PHP_ZTS ? "ZTS" : "NTS";')
echo "build-extension: PHP $version, API $api, $zts ($php_bin)"

# ext-php-rs and php-ext/build.rs use $PHP_CONFIG, else the php-config on
# PATH; exporting it only when it is another one keeps an existing build.
if [[ "$PHP_CONFIG" != "$(command -v php-config || true)" ]]; then
  export PHP_CONFIG
fi
(cd "$REPO" && cargo build --release --locked -p stickless-php)
so="$TARGET_DIR/release/libstickless_php.so"

# The built module must load into this PHP, register the save handler and
# say nothing at startup (a mismatch in API or ZTS is a startup warning).
out=$("$php_bin" -n -d "extension=$so" -d session.save_handler=stickless \
  -d display_startup_errors=1 -d error_reporting=-1 \
  -r 'echo extension_loaded("stickless") && class_exists("Stickless\\SessionHandler") ? "ok" : "missing";' 2>&1)
if [[ "$out" != *ok || "$out" == *Warning* ]]; then
  echo "build-extension: $so does not load cleanly into $php_bin:" >&2
  echo "$out" >&2
  exit 1
fi
echo "build-extension: $so loads into PHP $version ($zts, API $api)"

if [[ "$INSTALL" == --install ]]; then
  dir=$("$php_bin" -n -r 'echo ini_get("extension_dir");')
  install -m 0755 "$so" "$dir/stickless.so"
  echo "build-extension: installed $dir/stickless.so"
fi
