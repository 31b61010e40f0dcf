# Multi-stage image of bsg-report-worker on Debian 12.
# The build stage uses the same install script as the README's commands.
FROM debian:12-slim AS build
WORKDIR /src
COPY . .
RUN scripts/install-deps.sh \
 && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRW_WERROR=ON -DBRW_TESTS=OFF \
 && cmake --build build -j"$(nproc)" --target bsg-report-worker bsg-api-sim

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends librdkafka1 libcurl4 libuv1 \
      libjansson4 libmicrohttpd12 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home brw
COPY --from=build /src/build/bsg-report-worker /src/build/bsg-api-sim /usr/local/bin/
COPY deploy/bsg-report-worker.conf.example /etc/bsg-report-worker/bsg-report-worker.conf.example
USER 10001
LABEL org.opencontainers.image.title="bsg-report-worker" \
      org.opencontainers.image.description="Kafka worker that turns BSG campaign events into delivery reports"
ENTRYPOINT ["/usr/local/bin/bsg-report-worker"]
