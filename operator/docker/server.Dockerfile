# syntax=docker/dockerfile:1
# The server + sidecar image: one binary, `ballast`, run as `ballast <etcd flags>` (the
# member) and `ballast sidecar ...` (the native sidecar the operator renders beside it).
# Build from the repository root:
#   docker build -f operator/docker/server.Dockerfile -t ballast:0.1.0 .

FROM rust:1-bookworm AS build
WORKDIR /src
# protoc for ballast-proto's build script (it falls back to a vendored protoc otherwise).
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ballast \
 && install -D -m 0755 target/release/ballast /out/ballast

# distroless: glibc and CA roots, no shell, user `nonroot` (65532), the uid and gid the
# operator's pod template runs as.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ballast /usr/local/bin/ballast
USER 65532:65532
EXPOSE 2379 2380 2381 2382
ENTRYPOINT ["/usr/local/bin/ballast"]
