#!/usr/bin/env bash
# Build the current librdkafka line (the default of the build) from Debian's
# own source package into a cache prefix: the worker's "current" line.
# Debian 12's packaged librdkafka (2.0.2) stays the floor (-DBRW_RDKAFKA=system).
#
# Usage: scripts/rdkafka.sh [--force | --print-mirror]
#   --print-mirror  print the Debian mirror it would use and exit
#                   (scripts/image-build.sh uses the same one)
# Environment:
#   BRW_RDKAFKA_VERSION  Debian source version (default 2.14.2-1, forky)
#   BRW_RDKAFKA_SUITE    Debian suite that has it (default forky)
#   BRW_DEBIAN_MIRROR    Debian mirror (default: the first deb.debian.org-style
#                        URI in the machine's own apt sources)
#   BRW_CACHE_DIR        cache root (default $HOME/.cache/bsg-report-worker)
#   BRW_RDKAFKA_PREFIX   install prefix (default $BRW_CACHE_DIR/rdkafka-<upstream>)
#
# How: a `deb-src` line for the suite on the machine's mirror, in an apt
# configuration of its own (own source list, lists and cache under the
# prefix's work dir; the machine's sources are untouched); `apt-get source
# --download-only` (apt checks the suite's signed InRelease and the Sources
# index); the .orig and .debian tarballs are checked again here against the
# .dsc's SHA-256 sums; the upstream tree is unpacked without Debian's patches
# (they only add --enable-cjson-ext/--enable-nanopb-ext, whose build needs
# forky's nanopb and opentelemetry-proto); `./configure --prefix=<prefix>`
# and `make -C src install`: the C library only, no C++ library, examples
# or tests. Build dependencies are Debian 12 binary packages
# (scripts/install-deps.sh installs them).
#
# Idempotent: a stamp file marks a complete prefix; a second run does
# nothing. The last line on stdout is the prefix.
set -euo pipefail

force=0
print_mirror=0
case "${1:-}" in
--force) force=1 ;;
--print-mirror) print_mirror=1 ;;
"") ;;
-h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 0
    ;;
*)
    echo "rdkafka.sh: unknown argument: $1" >&2
    exit 2
    ;;
esac

# The mirror of the machine's own apt sources (one-line or deb822 format),
# or BRW_DEBIAN_MIRROR.
find_mirror() {
    mirror="${BRW_DEBIAN_MIRROR:-}"
    if [[ -z "$mirror" ]]; then
        mirror="$(
            {
                cat /etc/apt/sources.list 2>/dev/null || true
                cat /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true
            } | sed -nE \
                -e 's%^deb(-src)?[[:space:]]+(\[[^]]*\][[:space:]]+)?([a-z]+://[^[:space:]]+/debian)/?[[:space:]].*%\3%p' \
                -e 's%^URIs:[[:space:]]*([a-z]+://[^[:space:]]+/debian)/?([[:space:]].*)?$%\1%p' |
                head -n1
        )"
    fi
    if [[ -z "$mirror" ]]; then
        echo "rdkafka.sh: no Debian mirror (…/debian) in /etc/apt/sources.list{,.d};" \
            "set BRW_DEBIAN_MIRROR" >&2
        exit 1
    fi
}
if ((print_mirror)); then
    find_mirror
    echo "$mirror"
    exit 0
fi

debver="${BRW_RDKAFKA_VERSION:-2.14.2-1}"
suite="${BRW_RDKAFKA_SUITE:-forky}"
upver="${debver%-*}"
cache_root="${BRW_CACHE_DIR:-$HOME/.cache/bsg-report-worker}"
prefix="${BRW_RDKAFKA_PREFIX:-$cache_root/rdkafka-$upver}"
stamp="$prefix/.complete"
want="librdkafka=$debver suite=$suite"

if ((!force)) && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] &&
    [[ -f "$prefix/lib/pkgconfig/rdkafka.pc" ]]; then
    echo "rdkafka.sh: librdkafka $debver already in $prefix" >&2
    echo "$prefix"
    exit 0
fi

for tool in apt-get dpkg-source make cc pkg-config sha256sum; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "rdkafka.sh: '$tool' not found; run scripts/install-deps.sh" >&2
        exit 1
    fi
done
find_mirror


start=$(date +%s)
work="$prefix.work"
rm -rf "$work"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
trap 'rm -rf "$work"' EXIT
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed=""
[[ -f "$keyring" ]] && signed="[signed-by=$keyring] "
echo "deb-src ${signed}$mirror $suite main" >"$work/sources.list"
apt_opts=(-q
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o APT::Sandbox::User=root)

echo "rdkafka.sh: fetching librdkafka $debver ($suite) from $mirror" >&2
if ! apt-get "${apt_opts[@]}" update >&2; then
    echo "rdkafka.sh: apt-get update of '$suite' sources on $mirror failed" >&2
    exit 1
fi
if ! (cd "$work" && apt-get "${apt_opts[@]}" source --download-only \
    "librdkafka=$debver" >&2); then
    echo "rdkafka.sh: apt-get source librdkafka=$debver ($suite) refused" >&2
    exit 1
fi

# Check every file the .dsc lists against its SHA-256 sum.
dsc="$work/librdkafka_$debver.dsc"
sums="$(awk '/^Checksums-Sha256:/ { on = 1; next } on && /^ / { print $1 "  " $3; next } on { exit }' "$dsc")"
if [[ -z "$sums" ]]; then
    echo "rdkafka.sh: no Checksums-Sha256 in $dsc" >&2
    exit 1
fi
if ! (cd "$work" && sha256sum --strict -c - <<<"$sums" >&2); then
    echo "rdkafka.sh: checksum mismatch against $dsc" >&2
    exit 1
fi

dpkg-source --skip-patches -x "$dsc" "$work/src" >&2
(
    cd "$work/src"
    # The C library only; the build flags of the worker's own build.
    ./configure --prefix="$prefix" >"$work/configure.log" 2>&1 ||
        {
            tail -n 40 "$work/configure.log" >&2
            exit 1
        }
    make -C src -j"$(nproc 2>/dev/null || echo 2)" >"$work/make.log" 2>&1 ||
        {
            tail -n 40 "$work/make.log" >&2
            exit 1
        }
    make -C src install >"$work/install.log" 2>&1 ||
        {
            tail -n 40 "$work/install.log" >&2
            exit 1
        }
)
# The static archives are not used: the worker links the shared library.
# (Only files of librdkafka's own install are removed, whatever the prefix.)
rm -f "$prefix/lib/librdkafka.a" "$prefix/lib/librdkafka-static.a" \
    "$prefix/lib/pkgconfig/rdkafka-static.pc"
echo "$want" >"$stamp"
echo "rdkafka.sh: librdkafka $debver built into $prefix in $(($(date +%s) - start)) s" >&2
echo "$prefix"
