#!/usr/bin/env bash
# PHP's own session tests (php-src ext/session/tests) for the installed PHP,
# from Debian's source package, unpacked under target/php-src/ and printed:
#
#   target/php-src/<debian version>/ext/session/tests/*.phpt, *.inc
#   target/php-src/<debian version>/sapi/cgi/tests/include.inc   (one test includes it)
#   target/php-src/<debian version>/SOURCE        where they came from, how they were checked
#   target/php-src/for-<installed version>  ->  <debian version>
#
# Idempotent: once the link for the installed version exists, it prints the
# directory and touches no network. tests/tests/php_src_session.rs runs it.
#
# The host's apt configuration is left alone: a private sources.list with a
# deb-src line for each mirror and suite that apt installs php8.x-cli from,
# and private lists and cache, under a temporary target/php-src/.apt-*.
# If the mirror no longer serves the installed point release's source (404:
# security updates replace each other in the pool), the nearest older version
# it serves is taken, and SOURCE says so. When the Sources index lists no
# version the pool still has, the installed package's changelog names the
# earlier ones, taken from the pool by their signed .dsc (debian-keyring).
#
# Checks: `apt-get update` verifies the Release file's signature against
# Debian's archive keyring; `apt-get source` then checks every file's SHA-256
# against the signed Sources index. On top of that the upstream tarball's
# signature (.orig.tar.xz.asc) is checked with gpgv against the PHP release
# managers' keys that the Debian package ships (debian/upstream/signing-key.asc).
# Only the upstream tarball is unpacked (just the paths above), so the script
# refuses a version whose Debian patches touch them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD/target/php-src
src=php$(php -n -r 'echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;')
installed=$(dpkg-query -W -f='${source:Version}' "$src-cli")
link=$root/for-$installed
mkdir -p "$root"
exec 9>"$root/.lock"
flock 9 # one fetch at a time; a second waits, then finds the first's result
if [[ -f $link/SOURCE ]]; then
  cd "$link" && pwd -P
  exit 0
fi
work=$(mktemp -d "$root/.apt-XXXXXX")
trap 'rm -rf "$work"' EXIT
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed=""
[[ -f $keyring ]] && signed="[signed-by=$keyring] "
# " 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"
apt-cache policy "$src-cli" | awk -v s="$signed" '$2 ~ /^https?:/ {
  split($3, p, "/"); print "deb-src " s $2 " " p[1] " " p[2] }' | sort -u >"$work/sources.list"
[[ -s $work/sources.list ]] || { echo "php-src-tests: no mirror serves $src-cli" >&2; exit 1; }
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/dl"
apt=(-q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update >&2

version=""
for v in $(apt-cache "${apt[@]}" showsrc "$src" | sed -n 's/^Version: //p' | sort -u -r -V); do
  dpkg --compare-versions "$v" le "$installed" || continue
  if (cd "$work/dl" && apt-get "${apt[@]}" source --download-only "$src=$v" >&2); then
    version=$v
    break
  fi
  echo "php-src-tests: $src $v is listed but not served; trying an older one" >&2
  rm -f "$work/dl"/*
done

# from_pool VERSION: the source package VERSION straight from a mirror's pool,
# for when the Sources index lists only versions the pool no longer has.
# Trust comes from the .dsc's OpenPGP signature by a Debian developer
# (debian-keyring, itself installed by apt against the signed Release), and
# each file's SHA-256 against that signed .dsc.
from_pool() {
  local v=${1#*:} base dsc=$work/dl/${src}_${1#*:}.dsc
  for base in $(awk '{ print $(NF-2) }' "$work/sources.list" | sort -u); do
    for pool in pool/main pool/updates/main; do
      curl -fsS -o "$dsc" "$base/$pool/${src:0:1}/$src/${src}_$v.dsc" 2>/dev/null || continue
      gpgv --keyring "$devkeys" --output "$work/dsc.txt" "$dsc" 2>"$work/dsc-gpgv.log" ||
        { cat "$work/dsc-gpgv.log" >&2; return 1; }
      local files
      files=$(awk '/^Checksums-Sha256:/ { on = 1; next } on && /^ / { print $1 "  " $3; next } { on = 0 }' "$work/dsc.txt")
      [[ -n $files ]] || return 1
      local f
      for f in $(awk '{ print $2 }' <<<"$files"); do
        curl -fsS -o "$work/dl/$f" "$base/$pool/${src:0:1}/$src/$f" || return 1
      done
      (cd "$work/dl" && sha256sum --quiet -c <<<"$files") >&2 || return 1
      pool_url="$base/$pool/${src:0:1}/$src/"
      return 0
    done
  done
  return 1
}

pool_url=""
devkeys=/usr/share/keyrings/debian-keyring.gpg
if [[ -z $version ]]; then
  [[ -f $devkeys ]] || { echo "php-src-tests: the mirror serves no listed $src source; taking one from the pool needs debian-keyring (apt-get install debian-keyring)" >&2; exit 1; }
  # Every earlier Debian version of the installed package, newest first.
  for v in $(zcat "/usr/share/doc/$src-cli/changelog.Debian.gz" | sed -n "s/^$src (\([^)]*\)).*/\1/p"); do
    dpkg --compare-versions "$v" lt "$installed" || continue
    if from_pool "$v"; then
      version=$v
      echo "php-src-tests: $src $v from $pool_url (signed .dsc)" >&2
      break
    fi
    rm -f "$work/dl"/*
  done
fi
[[ -n $version ]] || { echo "php-src-tests: no source of $src <= $installed" >&2; exit 1; }

upstream=${version%%-*}
upstream=${upstream#*:}
orig=$work/dl/${src}_$upstream.orig.tar.xz
paths=(ext/session/tests sapi/cgi/tests/include.inc)
tar -xJf "$work/dl/${src}_${version#*:}.debian.tar.xz" -C "$work" debian/patches debian/upstream
if grep -l -E "^\+\+\+ [^ ]*/($(IFS='|'; echo "${paths[*]}"))" "$work"/debian/patches/*; then
  echo "php-src-tests: Debian patches these tests; unpack with dpkg-source instead" >&2
  exit 1
fi
gpg --batch --quiet --dearmor <"$work/debian/upstream/signing-key.asc" >"$work/upstream.gpg"
gpgv --keyring "$work/upstream.gpg" "$orig.asc" "$orig" 2>"$work/gpgv.log" ||
  { cat "$work/gpgv.log" >&2; exit 1; }

dest=$root/$version
rm -rf "$dest.new"
mkdir -p "$dest.new"
tar -xJf "$orig" -C "$dest.new" --strip-components=1 "${paths[@]/#/php-$upstream/}"
{
  echo "tests:     php-src $upstream ext/session/tests, from Debian source package $src $version"
  echo "installed: $src-cli $installed"
  [[ $version == "$installed" ]] || echo "           (the mirror does not serve $installed's source: nearest older one)"
  echo "mirror:    $(tr '\n' ';' <"$work/sources.list")"
  if [[ -n $pool_url ]]; then
    echo "pool:      $pool_url (the Sources index no longer lists it)"
    echo "verified:  the .dsc's signature, gpgv against debian-keyring: $(grep -E 'Good signature' "$work/dsc-gpgv.log")"
    echo "           SHA-256 of each file against that .dsc:"
  else
    echo "verified:  Release signature (apt-get update), SHA-256 of each file against the signed Sources (apt-get source):"
  fi
  (cd "$work/dl" && sha256sum -- *)
  echo "upstream signature, gpgv against debian/upstream/signing-key.asc:"
  grep -E 'Good signature|using' "$work/gpgv.log"
} >"$dest.new/SOURCE"
rm -rf "$dest"
mv "$dest.new" "$dest"
ln -sfn "$version" "$link"
echo "$dest"
