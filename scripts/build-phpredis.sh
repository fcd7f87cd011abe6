#!/usr/bin/env bash
# phpredis 6.2 for the installed PHP, built from Debian trixie's php-redis
# source package, as the benchmark's second baseline (Debian 12 ships 5.3.7):
#
#   target/phpredis/<version>/redis.so   with igbinary, lzf, zstd and lz4
#   target/phpredis/<version>/SOURCE     where it came from, how it was checked
#   target/phpredis/current  ->  <version>
#   target/phpredis/fpm-conf.d/          php-fpm's conf.d without Debian's own
#                                        phpredis (20-redis.ini), for
#                                        PHP_INI_SCAN_DIR: both cannot be loaded
#
# Prints the path of redis.so. Idempotent: once built for the installed PHP,
# it touches no network.
#
# The host's apt configuration is left alone: a private sources.list with one
# deb-src line for trixie, and private lists, under a temporary directory.
# `apt-get update` verifies the Release file's signature against Debian's
# archive keyring; the upstream tarball is then checked against the SHA-256
# that the signed Sources index gives for it. Only the upstream tarball is
# used (Debian's packaging only wires it into dh-php), so a pool that no
# longer serves the .dsc of that version does not matter.
#
# Needs php8.x-dev, php8.x-igbinary, libzstd-dev, liblz4-dev and curl
# (scripts/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
suite=${PHPREDIS_SUITE:-trixie}
mirror=${PHPREDIS_MIRROR:-http://deb.debian.org/debian}
root=$PWD/target/phpredis
php_version=$(php -n -r 'echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;')
api=$(php-config"$php_version" --phpapi)
mkdir -p "$root"
exec 9>"$root/.lock"
flock 9 # one build at a time; a second waits, then finds the first's result
# Rebuilt every time, so that it follows the packages installed since.
rm -rf "$root/fpm-conf.d"
mkdir -p "$root/fpm-conf.d"
for ini in "/etc/php/$php_version/fpm/conf.d"/*.ini; do
  [[ -e $ini ]] || continue
  grep -qE '^[[:space:]]*extension[[:space:]]*=[[:space:]]*"?redis(\.so)?"?[[:space:]]*$' "$ini" ||
    ln -s "$ini" "$root/fpm-conf.d/"
done
if [[ -f $root/current/SOURCE && -f $root/current/redis.so ]] &&
  grep -qx "php api:   $api" "$root/current/SOURCE"; then
  echo "$root/current/redis.so"
  exit 0
fi
work=$(mktemp -d "$root/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f $keyring ]] || { echo "build-phpredis: $keyring is missing (apt-get install debian-archive-keyring)" >&2; exit 1; }
echo "deb-src [signed-by=$keyring] $mirror $suite main" >"$work/sources.list"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
apt=(-q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update >&2

# The php-redis stanza of the verified Sources index: its version, pool
# directory and the upstream tarball's SHA-256 line.
# apt-helper reads the list in whatever compression apt kept it.
sources=$(find "$work/lists" -name '*_source_Sources*' | head -n 1)
[[ -n $sources ]] || { echo "build-phpredis: apt fetched no Sources index for $suite" >&2; exit 1; }
stanza=$(/usr/lib/apt/apt-helper cat-file "$sources" |
  awk '/^Package: php-redis$/ { on = 1 } on && /^$/ { on = 0; done = 1 } on && !done')
[[ -n $stanza ]] || { echo "build-phpredis: $suite's Sources index has no php-redis" >&2; exit 1; }
version=$(sed -n 's/^Version: //p' <<<"$stanza")
directory=$(sed -n 's/^Directory: //p' <<<"$stanza")
orig=$(awk '/^Checksums-Sha256:/ { on = 1; next } on && /^ / && $3 ~ /\.orig\.tar\./ { print $1 "  " $3 } /^[^ ]/ && !/^Checksums-Sha256:/ { on = 0 }' <<<"$stanza")
[[ -n $version && -n $directory && -n $orig ]] ||
  { echo "build-phpredis: cannot read php-redis's version, directory and tarball from the Sources index" >&2; exit 1; }
tarball=$(awk '{ print $2 }' <<<"$orig")
curl -fsS -o "$work/$tarball" "$mirror/$directory/$tarball"
(cd "$work" && sha256sum --quiet -c <<<"$orig") >&2

upstream=${version%%-*}
upstream=${upstream#*:}
mkdir -p "$work/src"
tar -xzf "$work/$tarball" -C "$work/src"
build=$work/src/redis-$upstream
[[ -f $build/config.m4 ]] || { echo "build-phpredis: $tarball has no redis-$upstream/config.m4" >&2; exit 1; }
(
  cd "$build"
  "phpize$php_version"
  ./configure --with-php-config="php-config$php_version" --enable-redis-igbinary --enable-redis-lzf \
    --enable-redis-zstd --with-libzstd --enable-redis-lz4 --with-liblz4
  make -j"$(nproc)"
) >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; echo "build-phpredis: the build failed" >&2; exit 1; }
got=$(php -n -d extension=igbinary -d "extension=$build/modules/redis.so" -r 'echo phpversion("redis");')
[[ $got == "$upstream" ]] || { echo "build-phpredis: the module says version '$got', expected $upstream" >&2; exit 1; }

dest=$root/$upstream
rm -rf "$dest"
mkdir -p "$dest"
cp "$build/modules/redis.so" "$dest/redis.so"
{
  echo "module:    phpredis $upstream, from Debian source package php-redis $version ($suite)"
  echo "mirror:    $mirror/$directory"
  echo "verified:  Release signature (apt-get update), SHA-256 of the upstream tarball against the signed Sources:"
  echo "           $orig"
  echo "built:     php$php_version, --enable-redis-igbinary --enable-redis-lzf --enable-redis-zstd --enable-redis-lz4"
  echo "php api:   $api"
} >"$dest/SOURCE"
ln -sfn "$upstream" "$root/current"
echo "$dest/redis.so"
