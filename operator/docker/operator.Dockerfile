# syntax=docker/dockerfile:1
# The operator image. Build from the repository root:
#   docker build -f operator/docker/operator.Dockerfile -t ballast-operator:0.1.0 .

FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ballast-operator \
 && install -D -m 0755 target/release/ballast-operator /out/ballast-operator

# kube and tonic use rustls with ring: no OpenSSL needed at run time.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ballast-operator /usr/local/bin/ballast-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ballast-operator"]
CMD ["run"]
