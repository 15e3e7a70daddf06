# syntax=docker/dockerfile:1
#
# riskd container image: a builder stage that compiles riskd (and librdkafka from source,
# through rdkafka's `libz` and `ssl` features), and a slim runtime stage that runs it as
# an unprivileged user.
#
#   docker build -t riskd:dev .
#   docker run --rm -p 8080:8080 -e RISKD__KAFKA__BROKERS=broker:9092 riskd:dev
#   docker run --rm riskd:dev check-config config/default.toml
#
# `docker compose up` (docker-compose.yml) runs it with Kafka, Prometheus and Grafana.

############################ builder ############################
FROM rust:1-bookworm AS builder

# librdkafka's ./configure + make needs a C/C++ toolchain and perl; `libz` and `ssl` link
# zlib and OpenSSL, found through pkg-config. Most of this is already in rust:1-bookworm;
# naming it keeps the build working if the base image slims down.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        make gcc g++ perl pkg-config zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# Cache mounts keep the crate registry and the target directory between builds (BuildKit),
# so editing one source file does not rebuild librdkafka. The binary is copied out of the
# cached target directory because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin riskd \
 && install -D -m 0755 target/release/riskd /out/riskd

############################ runtime ############################
FROM debian:bookworm-slim AS runtime

# ca-certificates for TLS to brokers; libssl3 and zlib1g are what the binary links.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid so volume permissions are predictable. Its home,
# /var/lib/riskd, is the one writable place (e.g. `riskd generate` output in compose);
# world-readable so the compose generator (another image, another uid) can read it.
RUN groupadd --system --gid 10001 riskd \
 && useradd --system --uid 10001 --gid riskd --home-dir /var/lib/riskd \
        --shell /usr/sbin/nologin riskd \
 && install -d -o riskd -g riskd -m 0755 /var/lib/riskd

COPY --from=builder /out/riskd /usr/local/bin/riskd
# Config files (defaults, example policy) so `--config config/...` works from WORKDIR.
# Owned by root: the service reads its config, it never rewrites it.
COPY config/ /opt/riskd/config/
WORKDIR /opt/riskd

# The default listen address is loopback, which is unreachable from outside a container.
ENV RISKD__API__LISTEN=0.0.0.0:8080 \
    RISKD_LOG=info

USER riskd:riskd
EXPOSE 8080

# `riskd healthcheck` asks this container's API for /healthz on the port of
# RISKD__API__LISTEN, over TLS when RISKD__API__TLS_CERT is set (the slim image has no
# curl, and a shell probe cannot speak TLS). docker-compose.yml uses the same command. A
# config file given to `run --config` must be given to the probe too.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["riskd", "healthcheck"]

ENTRYPOINT ["riskd"]
CMD ["run"]
