#!/usr/bin/env bash
# Install everything bsg-report-worker needs to build and test, from Debian's
# packages, and build the current librdkafka line from Debian's source package
# into a cache prefix (scripts/rdkafka.sh). Idempotent: packages already
# installed are skipped, `apt-get update` runs only when something is
# missing, and a cached librdkafka build is not rebuilt.
#
# Two librdkafka lines: Debian 12's librdkafka-dev (2.0.2, the floor;
# -DBRW_RDKAFKA=system) and the pinned current one (2.14.2 from Debian
# forky's source package; -DBRW_RDKAFKA=current, the default).
#
# Usage: scripts/install-deps.sh [--with-kafka]
#   --with-kafka  also fetch the Apache Kafka broker jars from Maven Central
#                 (scripts/kafka-jars.sh) for the integration tests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
with_kafka=0
for arg in "$@"; do
    case "$arg" in
    --with-kafka) with_kafka=1 ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown argument: $arg" >&2
        exit 2
        ;;
    esac
done

packages=(
    build-essential cmake pkg-config
    librdkafka-dev libcurl4-openssl-dev libuv1-dev libjansson-dev
    # zlib1g-dev: the worker's own (src/pack.c), and librdkafka's build's.
    zlib1g-dev
    dpkg-dev debian-archive-keyring
    libssl-dev libsasl2-dev libzstd-dev liblz4-dev
    libcmocka-dev libmicrohttpd-dev libyajl-dev
    python3 python3-confluent-kafka python3-jsonschema python3-yaml
    # docs/consumers.md's kcat examples, which tests/integration/
    # test_downstream.py runs (a missing kcat fails that test).
    kcat
    curl ca-certificates openssl
    tzdata
    openjdk-17-jre-headless maven
    clang-format
    # tests/integration/test_image.py (scripts/image-build.sh): the image
    # built with `podman build --isolation=chroot` as root on a base made by
    # debootstrap. Without recommends podman brings conmon, crun,
    # containers-common and the CNI plugins; no fuse-overlayfs, uidmap or
    # slirp4netns is needed (root, the kernel's overlay, the host network).
    podman debootstrap
    # tests/integration/test_tls.py: nginx terminates TLS (and offers
    # HTTP/2) in front of bsg-api-sim, run by the test with a configuration
    # of its own on free ports; the package's own service is not used.
    nginx-light
    # tests/integration/test_proxy.py: a real forward proxy (CONNECT to the
    # TLS server) run by the test on a free port; its service is not used.
    tinyproxy
)

missing=()
for p in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "install-deps.sh: not root and no sudo; install: ${missing[*]}" >&2
            exit 1
        fi
    fi
    echo "install-deps.sh: installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "install-deps.sh: all ${#packages[@]} packages already installed" >&2
fi

# The current librdkafka line, built once into the cache (last stdout line:
# its prefix; printed to stderr here so stdout stays quiet).
"$here/rdkafka.sh" >&2

if ((with_kafka)); then
    "$here/kafka-jars.sh"
fi
