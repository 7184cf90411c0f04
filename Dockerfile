# syntax=docker/dockerfile:1
#
# The switchyard gateway image: `docker build -t switchyard .`
#
#   docker run -p 3000:3000 switchyard --default-config
#   docker run -p 3000:3000 -v ./config:/app/config:ro switchyard --config-file /app/config/tensorzero.toml
#
# Runtime: distroless `cc` (glibc, libgcc, CA certificates, no shell), as the non-root user
# 65532, listening on 0.0.0.0:3000. Expected size: about 35 MB uncompressed (the stripped
# binary is 12.9 MB, 5.1 MB gzipped, measured on x86_64; the distroless base is about 22 MB).
#
# tests/python/test_deploy.py checks this file against the tree on every CI run: the files it
# copies exist and are all the build needs (cargo reads the manifests in exactly that context),
# the toolchain is new enough, the build is a locked release build (as the benchmark harness
# makes), and the image's command line starts a real gateway. No Docker engine runs in CI, so the
# image itself is not built there.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY layers layers
COPY mock mock
COPY src src
# Symbols are stripped from the image's binary only (benchmarks and profiles keep them).
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin switchyard \
    && install -D target/release/switchyard /out/switchyard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/switchyard /usr/local/bin/switchyard
USER 65532:65532
EXPOSE 3000
# Readiness, for `docker run` and Compose (Kubernetes uses its own probes): no shell or curl
# in the image, so the binary probes itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/switchyard", "--probe", "http://127.0.0.1:3000/ready"]
ENTRYPOINT ["/usr/local/bin/switchyard"]
