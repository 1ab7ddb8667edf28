# syntax=docker/dockerfile:1
# tagpromoter: build with the pinned toolchain, run as a non-root user on a small Debian
# with only what the runtime needs: the binary, git (fetch and push), an ssh client (git
# over ssh), CA certificates, and kustomize (every Kustomize bump is rendered before and
# after, `render: auto`). The root filesystem can be read-only: HOME and the cache live
# under /var/cache/tagpromoter (mount an emptyDir there, as deploy/ does).

# kustomize from source at a pinned version: Go's checksum database verifies every module.
FROM golang:1.23-bookworm AS kustomize
RUN CGO_ENABLED=0 GOBIN=/out go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin tagpromoter \
    && strip target/release/tagpromoter

FROM debian:bookworm-slim
# Debian's security updates move these packages' versions; pinning them would break the
# build on every point release, so the base image's tag is what pins them (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 tagpromoter \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/cache/tagpromoter/home \
        --shell /usr/sbin/nologin tagpromoter \
    && mkdir -p /var/cache/tagpromoter/home /etc/tagpromoter/rules \
    && chown -R 10001:10001 /var/cache/tagpromoter
COPY --from=build /src/target/release/tagpromoter /usr/local/bin/tagpromoter
COPY --from=kustomize /out/kustomize /usr/local/bin/kustomize
ENV HOME=/var/cache/tagpromoter/home \
    TAGPROMOTER_CACHE_DIR=/var/cache/tagpromoter \
    TAGPROMOTER_RULES=/etc/tagpromoter/rules \
    TAGPROMOTER_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9090
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/tagpromoter"]
CMD ["run"]
