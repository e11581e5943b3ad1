# syntax=docker/dockerfile:1
# Multi-architecture: linux/amd64 and linux/arm64 from one builder running
# on the build machine's own platform (no emulation), cross-compiling:
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     -t ghcr.io/steward-dev/steward:0.1.0 --push .
FROM --platform=$BUILDPLATFORM rust:1-bookworm AS build
ARG TARGETARCH
# The Rust target and Debian's cross toolchain (linker, and the C compiler
# ring and jemalloc are built with) for the platform being built. On arm64
# jemalloc is built for pages up to 64 KiB (JEMALLOC_SYS_WITH_LG_PAGE), so
# the image also runs on kernels with 16 or 64 KiB pages.
RUN case "$TARGETARCH" in \
      amd64) echo x86_64-unknown-linux-gnu > /rust-target; echo x86_64-linux-gnu > /gnu-triple ;; \
      arm64) echo aarch64-unknown-linux-gnu > /rust-target; echo aarch64-linux-gnu > /gnu-triple ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends "gcc-$(sed 's/_/-/g' /gnu-triple)" "libc6-dev-$TARGETARCH-cross" \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$(cat /rust-target)"
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY crds ./crds
COPY e2e ./e2e
COPY bench ./bench
RUN target="$(cat /rust-target)" gnu="$(cat /gnu-triple)" \
 && env_target="$(echo "$target" | tr 'a-z-' 'A-Z_')" \
 && export "CARGO_TARGET_${env_target}_LINKER=${gnu}-gcc" "CC_$(echo "$target" | tr '-' '_')=${gnu}-gcc" \
 && if [ "$TARGETARCH" = arm64 ]; then export JEMALLOC_SYS_WITH_LG_PAGE=16; fi \
 && cargo build --release --locked --bin steward --target "$target" \
 && cp "target/$target/release/steward" /steward

# Run: distroless, non-root, nothing but the binary and CA certificates
# (the base image is multi-architecture: this stage is the target's).
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="steward" \
      org.opencontainers.image.description="Owners, least-privilege workload RBAC and time-bound exceptions, enforced in the cluster" \
      org.opencontainers.image.source="https://github.com/steward-dev/steward" \
      org.opencontainers.image.url="https://github.com/steward-dev/steward" \
      org.opencontainers.image.documentation="https://github.com/steward-dev/steward#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION"
COPY --from=build /steward /usr/local/bin/steward
USER 65532:65532
ENTRYPOINT ["steward"]
CMD ["run"]
