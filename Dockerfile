# Runeflow image: one binary for every role (`init`, `api`, `worker`, and the
# CLI verbs), chosen by the command: `docker run IMAGE worker`.
#
#   docker build -t runeflow .
#   docker compose up -d --build          # see compose.yaml

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- build stage ------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build

# libgit2 (built by the git2 crate, with https) links against OpenSSL and is
# found through pkg-config.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# 1. Dependencies only: the manifests, the lock file and empty stand-ins for
#    every target cargo insists on, so this layer (the long part of the build)
#    is reused until a Cargo.toml or Cargo.lock changes.
COPY Cargo.toml Cargo.lock ./
COPY shared/Cargo.toml shared/
COPY migrations/Cargo.toml migrations/
COPY queue/Cargo.toml queue/
COPY api/Cargo.toml api/
COPY worker/Cargo.toml worker/build.rs worker/
RUN mkdir -p src benches shared/src migrations/src queue/src api/src worker/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs shared/src/lib.rs migrations/src/lib.rs queue/src/lib.rs api/src/lib.rs worker/src/lib.rs \
 && for bench in $(awk '/^\[/ { b = ($0 == "[[bench]]") } b && /^name *=/ { gsub(/^name *= *"|"$/, ""); print }' Cargo.toml); do \
        touch "benches/$bench.rs"; \
    done \
 && cargo build --release --locked --bin runeflow \
 && rm -rf src benches shared/src migrations/src queue/src api/src worker/src

# 2. The sources (python_shim/ is embedded into the binary by worker/build.rs).
COPY . .
# COPY keeps the context's timestamps, which may be older than the stand-ins
# built above: make every first-party source newer so cargo rebuilds them.
RUN find src shared api worker migrations python_shim benches -type f -exec touch {} + \
 && cargo build --release --locked --bin runeflow \
 && install -m 0755 target/release/runeflow /usr/local/bin/runeflow

# ---- runtime stage ----------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# python3 runs the workflows (RUNEFLOW_PYTHON, default python3); libssl3 is
# libgit2's TLS; ca-certificates for https remotes (git, S3).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*

# init and api run as runeflow (10001). The worker runs as root with only
# CAP_SETUID, CAP_SETGID and CAP_KILL (compose.yaml) so that each
# concurrency slot runs its workflow children under a uid of its own from
# RUNEFLOW_CHILD_UID_RANGE (default 70000-70999, gid = uid). Those uids need
# no /etc/passwd entry and own nothing in the image: they can read the
# interpreter (/usr/bin/python3 and its library are world-readable) and
# write only to world-writable places such as /tmp.
# /run/runeflow (root, 0755) holds the worker's health file, out of the
# children's reach; /run/runeflow/child-uids (root, 0700) the workers' uid
# claims, a volume shared by every worker replica (compose.yaml).
RUN groupadd --system --gid 10001 runeflow \
 && useradd --system --uid 10001 --gid runeflow --create-home --home-dir /home/runeflow \
        --shell /usr/sbin/nologin runeflow \
 && install -d -m 0755 -o root -g root /run/runeflow \
 && install -d -m 0700 -o root -g root /run/runeflow/child-uids

COPY --from=build /usr/local/bin/runeflow /usr/local/bin/runeflow

USER runeflow:runeflow
WORKDIR /home/runeflow
ENV RUNEFLOW_PYTHON=python3 \
    RUNEFLOW_BIND=0.0.0.0:8080
EXPOSE 8080

ENTRYPOINT ["runeflow"]
CMD ["--help"]
