# certboot's image: two static binaries (certboot, certboot-controller) in an otherwise empty
# (scratch) image.
#
#   docker build --build-arg CERTBOOT_GIT_REVISION="$(git rev-parse --short=12 HEAD)" -t certboot .
#
# Multi-arch (amd64 + arm64): each platform's builder runs natively for that platform (on a
# native node, or under QEMU emulation), so `uname -m` picks the target and no cross linker is
# needed:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg CERTBOOT_GIT_REVISION="$(git rev-parse --short=12 HEAD)" -t REGISTRY/certboot:TAG --push .
#
# The build command is scripts/build-static.sh's, verbatim (tests/e2e_static.rs checks this).
# The test node builds the final stage alone, from that script's binaries (scripts/node-images.sh;
# tests/dockerfile.rs proves it is this stage).

# Pinned builder. For reproducible builds pin the digest too:
# FROM rust:1.95.0-bookworm@sha256:<digest of the tag, from `docker buildx imagetools inspect rust:1.95.0-bookworm`>
FROM rust:1.95.0-bookworm AS builder
WORKDIR /src

# 1. Dependencies only, cached as long as the manifests and Cargo.lock do not change: build dummy
#    crates with the real manifests, each program alone (scripts/build-static.sh says why).
COPY Cargo.toml Cargo.lock ./
COPY crates/certboot-core/Cargo.toml crates/certboot-core/build.rs crates/certboot-core/
COPY crates/certboot-controller/Cargo.toml crates/certboot-controller/
COPY crates/certboot-rsa/Cargo.toml crates/certboot-rsa/
# .cargo/config.toml: the build settings of the C crypto library (AWS-LC), as every cargo build uses.
COPY .cargo ./.cargo
# Cargo.toml names the benchmark target, so its source must exist for cargo to read the manifest.
COPY benches ./benches
RUN for dir in . crates/certboot-core crates/certboot-controller crates/certboot-rsa; do \
      mkdir "$dir/src" && echo 'fn main() {}' > "$dir/src/main.rs" && touch "$dir/src/lib.rs"; \
    done \
 && rm crates/certboot-core/src/main.rs crates/certboot-rsa/src/main.rs \
 && target="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" cargo build --release --target "$target" --locked -p certboot \
 && RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" cargo build --release --target "$target" --locked -p certboot-controller \
 && rm -rf src crates/certboot-core/src crates/certboot-controller/src crates/certboot-rsa/src

# 2. certboot itself. The core's build.rs embeds this revision in `certboot --version` (.git is not in the
#    build context, see .dockerignore).
ARG CERTBOOT_GIT_REVISION=unknown
ENV CERTBOOT_GIT_REVISION=${CERTBOOT_GIT_REVISION}
COPY src ./src
COPY crates/certboot-core/src ./crates/certboot-core/src
COPY crates/certboot-controller/src ./crates/certboot-controller/src
COPY crates/certboot-rsa/src ./crates/certboot-rsa/src
RUN touch src/*.rs crates/*/src/*.rs \
 && target="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" cargo build --release --target "$target" --locked -p certboot \
 && RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" cargo build --release --target "$target" --locked -p certboot-controller \
 && cp "target/$target/release/certboot" "target/$target/release/certboot-controller" / \
 && /certboot --version && /certboot-controller --version

# The image: the binary and nothing else (no shell, no libc, no CA bundle: certboot trusts only
# the cluster CA it is given). /etc/hosts and /etc/resolv.conf are mounted by the kubelet.
FROM scratch
ARG CERTBOOT_GIT_REVISION=unknown
LABEL org.opencontainers.image.title="certboot" \
      org.opencontainers.image.description="Gives a Kubernetes pod its own TLS identity through the certificates.k8s.io/v1 CSR API" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${CERTBOOT_GIT_REVISION}" \
      org.opencontainers.image.source="https://github.com/certboot/certboot"
COPY --from=builder /certboot /certboot
# The cluster-side controller (approver), run by manifests/approver/ with `command: [/certboot-controller]`.
COPY --from=builder /certboot-controller /certboot-controller
# Non-root (the "nonroot" UID/GID of distroless images); the manifests set the same.
USER 65532:65532
ENTRYPOINT ["/certboot"]
