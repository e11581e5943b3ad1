# syntax=docker/dockerfile:1
# Build: a locked, release build of the one `steward` binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY crds ./crds
COPY e2e ./e2e
COPY bench ./bench
RUN cargo build --release --locked --bin steward

# Run: distroless, non-root, nothing but the binary and CA certificates.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/steward /usr/local/bin/steward
USER 65532:65532
ENTRYPOINT ["steward"]
CMD ["run"]
