# Image of bsg-report-worker (and bsg-api-sim) on Debian 12.
#
#   docker build -t bsg-report-worker:0.1.0 .
#   docker build --build-arg VERSION=0.1.0 --build-arg SOURCE=<repo URL> \
#                --build-arg REVISION="$(git rev-parse HEAD)" -t ... .
#
# Two stages: "build" installs only the build packages (the build set of
# scripts/install-deps.sh, without its test tools: Java, Maven, Python,
# cmocka, clang-format), builds the pinned current librdkafka (2.14.2) from
# Debian forky's source package with scripts/rdkafka.sh into
# /opt/librdkafka-2.14.2 (as scripts/install-deps.sh does into its cache),
# and builds exactly as scripts/test.sh's -Werror build does, against it,
# with the tests off. The runtime stage has that librdkafka.so.1 at the same
# path (the binaries' RUNPATH), the shared libraries it and the worker need
# from Debian 12, the CA bundle and curl (for HEALTHCHECK), and runs as uid
# 10001.
#
# Configuration is by environment (BRW_* variables, docs/configuration.md);
# the API key comes from BSG_API_KEY or, better, from a mounted secret file:
#   -e BRW_API_KEY_FILE=/run/secrets/bsg_api_key
# The endpoints /metrics, /healthz and /readyz listen on 0.0.0.0:9464.
# docs/operations.md has the whole story (compose, Kubernetes, alerts).
#
# BASE_IMAGE: both stages' base, Debian 12 (bookworm). Without a registry,
# scripts/image-build.sh makes one with debootstrap from the machine's Debian
# mirror and builds with podman on it; tests/integration/test_image.py builds
# the image that way and runs its worker through the pipeline e2e.
ARG BASE_IMAGE=debian:12-slim

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config \
      libcurl4-openssl-dev libuv1-dev libjansson-dev \
      libmicrohttpd-dev libyajl-dev \
      dpkg-dev debian-archive-keyring \
      libssl-dev libsasl2-dev zlib1g-dev libzstd-dev liblz4-dev \
 && rm -rf /var/lib/apt/lists/*

# librdkafka 2.14.2 from Debian forky's source package (checked against the
# .dsc's SHA-256 sums), the C library only; its own apt configuration, so the
# image's sources stay bookworm's. A layer of its own: cached until the
# script changes.
COPY scripts/rdkafka.sh /usr/local/sbin/rdkafka.sh
RUN BRW_RDKAFKA_PREFIX=/opt/librdkafka-2.14.2 /usr/local/sbin/rdkafka.sh \
 && strip --strip-unneeded /opt/librdkafka-2.14.2/lib/librdkafka.so.1

WORKDIR /src
# Only what the build reads, so that editing docs or tests keeps the cache.
COPY CMakeLists.txt ./
COPY include/ include/
COPY src/ src/

RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRW_WERROR=ON \
      -DBRW_TESTS=OFF -DBRW_RDKAFKA=current \
      -DBRW_RDKAFKA_PREFIX=/opt/librdkafka-2.14.2 \
 && cmake --build build -j"$(nproc)" --target bsg-report-worker bsg-api-sim \
 && cmake --install build --prefix /out --strip

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG SOURCE=""
ARG REVISION=""

LABEL org.opencontainers.image.title="bsg-report-worker" \
      org.opencontainers.image.description="Kafka worker that turns BSG campaign events into delivery reports" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libcurl4 libuv1 libjansson4 libmicrohttpd12 libyajl2 \
      libssl3 libsasl2-2 zlib1g libzstd1 liblz4-1 \
      ca-certificates curl tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 bsg-report-worker \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin bsg-report-worker

# The pinned librdkafka, where the binaries' RUNPATH points.
COPY --from=build /opt/librdkafka-2.14.2/lib/librdkafka.so.1 /opt/librdkafka-2.14.2/lib/
COPY --from=build /out/bin/bsg-report-worker /out/bin/bsg-api-sim /usr/local/bin/
COPY deploy/bsg-report-worker.conf.example /etc/bsg-report-worker/bsg-report-worker.conf.example

# Inside a container the endpoints must be reachable from outside it (the
# default, 127.0.0.1:9464, is for hosts). JSON logs on stderr.
ENV BRW_METRICS_LISTEN=0.0.0.0:9464 \
    BRW_LOG_FORMAT=json
EXPOSE 9464

USER 10001:10001

# /healthz answers while the event loop runs. The port follows
# BRW_METRICS_LISTEN when it is changed at run time.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD port="${BRW_METRICS_LISTEN##*:}"; \
      curl -fsS -m 2 -o /dev/null "http://127.0.0.1:${port:-9464}/healthz" || exit 1

# SIGTERM: stop consuming, flush, commit, leave the group, exit 0 within
# shutdown.timeout (30s by default): give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/bsg-report-worker"]
CMD []
