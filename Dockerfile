# syntax=docker/dockerfile:1
# The kubeop image: one binary serving `kubeop serve` (default), `admission` and `operator`
# (deploy/ runs the latter two with args). Build: docker build -t ghcr.io/kubeop/kubeop:0.1.0 .

# Stage 1, build: the official Rust image at the toolchain rust-toolchain.toml pins (1.95), on
# Debian 12 like the runtime below, so the binary links against the same glibc. The
# wasm32-wasip2 target is needed because host/plugins/build.rs compiles the built-in plugins.
FROM rust:1.95-bookworm AS build
WORKDIR /build
# The toolchain file first, so the target is added to the pinned toolchain in a cached layer.
COPY rust-toolchain.toml ./
RUN rustup target add wasm32-wasip2
COPY . .
# --locked: build exactly Cargo.lock (and plugins/Cargo.lock). The registry cache only speeds
# up rebuilds; the binary lands in /build/target/release, inside the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p kubeop

# Stage 2, runtime: distroless "cc" carries just glibc, libgcc and CA certificates (what a
# dynamically linked Rust binary needs), no shell or package manager; ":nonroot" is uid 65532,
# which the deploy/ manifests' securityContext also asks for.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="kubeop" \
      org.opencontainers.image.description="Control plane for multi-tenant Kubernetes platforms, with WebAssembly policy and pricing plugins" \
      org.opencontainers.image.source="https://github.com/kubeop/kubeop" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /build/target/release/kubeop /usr/local/bin/kubeop
USER 65532:65532
# The development profile's local state (.kubeop/: SQLite file, generated keys) goes here.
WORKDIR /home/nonroot
# `kubeop serve` defaults to localhost:18080, unreachable from outside a container: listen on all
# interfaces (the production profile's address too). admission and operator have their own.
ENV KUBEOP_HTTP_ADDR=:18080
EXPOSE 18080
ENTRYPOINT ["/usr/local/bin/kubeop"]
CMD ["serve"]
