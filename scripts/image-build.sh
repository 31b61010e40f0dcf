#!/usr/bin/env bash
# Build the Dockerfile's image with podman, without a registry: the base
# (Debian 12) is made locally with debootstrap from the machine's own Debian
# mirror, cached, and imported into podman's storage; the Dockerfile is
# built on it with `--build-arg BASE_IMAGE=<that tag>`. With a registry at
# hand, `docker build .` or `podman build .` on debian:12-slim is the same
# build; this script is for machines that reach only Debian's archive (CI
# here, tests/integration/test_image.py).
#
# Usage: scripts/image-build.sh [--tag TAG] [--root DIR --runroot DIR]
#                               [--prune] [--base-only]
#   --tag TAG        the image's tag (default localhost/bsg-report-worker:dev)
#   --root, --runroot
#                    podman's storage (`podman --root … --runroot …`);
#                    default: podman's own
#   --prune          for a storage of its own (--root): tag the build stage
#                    TAG-build-stage too (so that its layers stay cached),
#                    then remove every image no tag needs (what earlier
#                    builds and bases left) with `podman image prune`
#   --base-only      make and import the base only; print its tag
# Environment:
#   BRW_CACHE_DIR          cache root (default $HOME/.cache/bsg-report-worker)
#   BRW_DEBIAN_MIRROR      Debian mirror (default: the first …/debian URI of
#                          the machine's own apt sources, as rdkafka.sh)
#   BRW_BASE_SUITE         Debian suite of the base (default bookworm)
#   BRW_PODMAN_BUILD_ARGS  more arguments for `podman build` (word-split)
#
# The base: `debootstrap --variant=minbase <suite>` (Release signature
# checked with debian-archive-keyring), made like debian:12-slim — apt
# sources in deb822 form (<suite>, <suite>-updates, <suite>-security on the
# mirror), the slim image's dpkg path excludes (no docs but copyright, no
# man pages, info or locales) and apt settings (no caches, compressed
# lists), no apt lists, no resolv.conf or hostname of this machine; plus the
# Acquire settings of this machine's apt that decide whether the archive is
# reachable at all (proxies, Check-Valid-Until, Check-Date), so that apt in
# the build reaches the mirror as the host's apt does. Kept as a tarball in
# $BRW_CACHE_DIR/base/<suite>-minbase/ (a stamp names what made it: a second
# run does not debootstrap again) and imported as
# localhost/bsg-report-worker-base:<suite>-minbase-<first 12 hex of the
# tarball's SHA-256> when podman does not have that tag yet.
#
# The build: `podman build --isolation=chroot --network=host --format=docker`
# (chroot isolation: no OCI runtime is started, which works in sandboxes
# where containers cannot run; the docker format keeps the HEALTHCHECK,
# which the OCI format drops). Podman's layer cache makes a rebuild of
# unchanged sources a matter of seconds. Needs root (or a rootless podman
# set up by hand), podman and debootstrap (scripts/install-deps.sh).
#
# The last line on stdout is the tag built.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="localhost/bsg-report-worker:dev"
base_only=0
prune=0
podman=(podman)
while (($#)); do
    case "$1" in
    --tag)
        tag="${2:?--tag needs a value}"
        shift
        ;;
    --root | --runroot)
        podman+=("$1" "${2:?$1 needs a value}")
        shift
        ;;
    --prune) prune=1 ;;
    --base-only) base_only=1 ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *)
        echo "image-build.sh: unknown argument: $1" >&2
        exit 2
        ;;
    esac
    shift
done

for tool in podman debootstrap tar sha256sum apt-config; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "image-build.sh: '$tool' not found; run scripts/install-deps.sh" >&2
        exit 1
    fi
done

suite="${BRW_BASE_SUITE:-bookworm}"
cache_root="${BRW_CACHE_DIR:-$HOME/.cache/bsg-report-worker}"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# The mirror of the machine's own apt sources, the one rdkafka.sh uses
# (BRW_DEBIAN_MIRROR overrides it there too).
mirror="$("$(dirname "${BASH_SOURCE[0]}")/rdkafka.sh" --print-mirror)"

# This machine's apt settings that decide whether the archive is reachable;
# they go into the base so that apt inside the build behaves alike.
acquire=""
for key in Acquire::http::Proxy Acquire::https::Proxy Acquire::Check-Valid-Until \
    Acquire::Check-Date; do
    val="$(apt-config shell v "$key" | sed -nE "s/^v='(.*)'$/\1/p")"
    if [[ -n "$val" ]]; then
        acquire+="$key \"$val\";"$'\n'
    fi
done

dir="$cache_root/base/$suite-minbase"
tarball="$dir/rootfs.tar"
stamp="$dir/.complete"
# What the tarball is made of: a change of any of these makes it again.
want="$(printf 'suite=%s variant=minbase mirror=%s format=2\n%s' "$suite" "$mirror" "$acquire")"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$tarball" ]]; then
    echo "image-build.sh: base $suite-minbase cached in $dir" >&2
else
    start=$(date +%s)
    if [[ ! -f "$keyring" ]]; then
        echo "image-build.sh: $keyring missing (debian-archive-keyring)" >&2
        exit 1
    fi
    mkdir -p "$dir"
    rm -f "$stamp" "$tarball"
    rootfs="$dir/rootfs.work"
    rm -rf "$rootfs"
    trap 'rm -rf "$rootfs" "$tarball.part"' EXIT
    echo "image-build.sh: debootstrap --variant=minbase $suite from $mirror" >&2
    if ! debootstrap --variant=minbase --keyring="$keyring" "$suite" "$rootfs" "$mirror" \
        >"$dir/debootstrap.log" 2>&1; then
        tail -n 30 "$dir/debootstrap.log" >&2
        echo "image-build.sh: debootstrap failed (log: $dir/debootstrap.log)" >&2
        exit 1
    fi
    # As debian:12-slim: apt sources in deb822 form, dpkg excludes, apt
    # settings for images; then the files that slim leaves out.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: $keyring

Types: deb
URIs: $mirror-security
Suites: $suite-security
Components: main
Signed-By: $keyring
EOF
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# As debian:*-slim: no documentation but the copyright files, no man pages,
# info pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    printf 'Acquire::GzipIndexes "true";\n' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
    printf 'Acquire::Languages "none";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    printf 'Apt::AutoRemove::SuggestsImportant "false";\n' \
        >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
    if [[ -n "$acquire" ]]; then
        printf '// From the apt configuration of the machine that made this base\n// (scripts/image-build.sh).\n%s' \
            "$acquire" >"$rootfs/etc/apt/apt.conf.d/90host-acquire"
    fi
    (
        cd "$rootfs"
        find usr/share/doc -mindepth 1 -not -type d -not -name copyright -delete
        find usr/share/doc -mindepth 1 -type d -empty -delete
        rm -rf usr/share/groff/* usr/share/info/* usr/share/linda/* \
            usr/share/lintian/overrides/* usr/share/locale/* usr/share/man/*
        rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/apt/archives/*.deb \
            tmp/* etc/resolv.conf etc/hostname
        find var/log -type f -delete
        if [[ -f etc/machine-id ]]; then : >etc/machine-id; fi
    )
    # Device nodes, /proc and /sys are the runtime's business.
    tar --numeric-owner --xattrs --sort=name -C "$rootfs" \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
    echo "$want" >"$stamp"
    echo "image-build.sh: base made in $(($(date +%s) - start)) s:" \
        "$(du -h "$tarball" | cut -f1) in $tarball" >&2
fi

sum="$(sha256sum "$tarball" | cut -c1-12)"
base="localhost/bsg-report-worker-base:$suite-minbase-$sum"
if ! "${podman[@]}" image exists "$base"; then
    echo "image-build.sh: podman import $tarball as $base" >&2
    "${podman[@]}" import --quiet --change 'CMD ["bash"]' \
        --message "debootstrap --variant=minbase $suite ($mirror)" \
        "$tarball" "$base" >/dev/null
fi
if ((base_only)); then
    echo "$base"
    exit 0
fi

start=$(date +%s)
echo "image-build.sh: podman build $tag on $base" >&2
build=("${podman[@]}" build --isolation=chroot --network=host --format=docker --layers
    --build-arg "BASE_IMAGE=$base")
# shellcheck disable=SC2206 # BRW_PODMAN_BUILD_ARGS is word-split on purpose
build+=(${BRW_PODMAN_BUILD_ARGS:-})
if ((prune)); then
    # The build stage under a tag of its own: its layers (apt, librdkafka)
    # are then an image's ancestors, which the prune below keeps.
    "${build[@]}" --target build -t "$tag-build-stage" -f "$root/Dockerfile" "$root" >&2
fi
"${build[@]}" -t "$tag" -f "$root/Dockerfile" "$root" >&2
echo "image-build.sh: built $tag in $(($(date +%s) - start)) s" >&2
if ((prune)); then
    # Bases of other tarballs, then every image that no tag needs.
    "${podman[@]}" images --format '{{.Repository}}:{{.Tag}}' \
        localhost/bsg-report-worker-base |
        while read -r old; do
            if [[ "$old" == "localhost/bsg-report-worker-base:$suite-minbase-"* &&
                "$old" != "$base" ]]; then
                "${podman[@]}" rmi "$old" >/dev/null
            fi
        done
    n="$("${podman[@]}" image prune -f | grep -c . || true)"
    echo "image-build.sh: pruned $n image(s) no tag needs" >&2
fi
echo "$tag"
