# MemQuorum sidecar agent image.
#
#   docker build -t memquorum:latest .
#
# Stage 1 compiles the agent (memquorum) and its CLI (mqctl) on Debian 12 with
# the same packages scripts/install-deps.sh installs for a developer. Stage 2
# carries only the two binaries and the Debian packages that hold the shared
# libraries they load (scripts/docker/runtime-packages.sh asks ldd and dpkg),
# and runs them as an unprivileged numeric user. No compiler, shell tools
# beyond Debian's base, CA bundle, docs or apt lists are left in it.
#
# The API port binds to 127.0.0.1 by default (the app container of the same
# pod reaches it on localhost). To publish it from a standalone container set
# MEMQUORUM_API_BIND=0.0.0.0, as docker-compose.yml does.
#
# No registry is reachable on the project's machines: there
# scripts/docker/base-image.sh builds the debian:12-slim this file starts from
# (debootstrap), and scripts/docker/test-image.sh builds and tests the image.

ARG DEBIAN_IMAGE=debian:12-slim

# ---------------------------------------------------------------- build ----
FROM ${DEBIAN_IMAGE} AS build

ARG DEBIAN_FRONTEND=noninteractive
ARG CMAKE_BUILD_TYPE=Release

# Build packages: the compiler/build part of scripts/install-deps.sh (the
# test-only tools there, iproute2, iptables, psmisc, are left out).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc-dev libgrpc++-dev protobuf-compiler-grpc \
      protobuf-compiler libprotobuf-dev protobuf-c-compiler libprotobuf-c-dev \
      librdkafka-dev libcurl4-openssl-dev libwebsockets-dev libjsmn-dev \
      libssl-dev zlib1g-dev libmimalloc-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Sources only (see .dockerignore). The top-level CMakeLists.txt adds tests/,
# whose CMakeLists.txt adds only the suites that exist: copying that one file
# keeps a change to a test from rebuilding the image. tests/image/imagebuild.py
# reads these COPY lines to know which files key the images it builds.
COPY CMakeLists.txt ./
COPY cmake ./cmake
COPY proto ./proto
COPY agent ./agent
COPY tools ./tools
COPY tests/CMakeLists.txt ./tests/
COPY scripts/docker/runtime-packages.sh /usr/local/bin/

RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE} \
 && cmake --build build --target memquorum mqctl \
 && strip --strip-unneeded build/bin/memquorum build/bin/mqctl \
 && build/bin/memquorum --help >/dev/null \
 && runtime-packages.sh build/bin/memquorum build/bin/mqctl >build/runtime-packages \
 && cat build/runtime-packages

# -------------------------------------------------------------- runtime ----
FROM ${DEBIAN_IMAGE} AS runtime

ARG DEBIAN_FRONTEND=noninteractive

# Runtime packages: exactly those that own a library the binaries load, as the
# build stage found them (today libgrpc29, libprotobuf-c1, libwebsockets17,
# libmimalloc2.0 and what they need, e.g. libabsl20220623, libre2-9,
# libc-ares2, libssl3, libcurl4 for Nacos discovery and librdkafka1 for
# Kafka ingestion). There is no CA bundle: the agent talks to Nacos over
# plain HTTP and to Kafka in PLAINTEXT, and opens no TLS connection yet (add
# ca-certificates with the first TLS client option).
#
# The dpkg excludes keep docs, man pages and translations out whatever the
# base image is (Debian's slim images and base-image.sh set the same).
COPY --from=build /src/build/runtime-packages /tmp/runtime-packages
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/lintian/*' \
      'path-exclude /usr/share/locale/*' >/etc/dpkg/dpkg.cfg.d/memquorum-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends $(cat /tmp/runtime-packages) \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
      /var/cache/debconf/*-old /var/lib/dpkg/*-old /tmp/runtime-packages \
 && groupadd --gid 10001 memquorum \
 && useradd --uid 10001 --gid memquorum --no-create-home --no-log-init \
      --home-dir /nonexistent --shell /usr/sbin/nologin memquorum

COPY --from=build /src/build/bin/memquorum /src/build/bin/mqctl /usr/local/bin/

# Fail the image build, not the first pod start, when a shared library is missing.
RUN if ldd /usr/local/bin/memquorum /usr/local/bin/mqctl | grep 'not found'; then exit 1; fi

# Numeric so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# 8080 API gRPC (127.0.0.1 unless MEMQUORUM_API_BIND says otherwise)
# 7070 peer gRPC (Raft traffic between agents, all interfaces)
# 9090 HTTP: /healthz /readyz /metrics /actuator/* and the websocket /v1/watch
EXPOSE 8080 7070 9090

# Liveness, as /healthz means it: the process runs and serves HTTP. Not
# readiness (/readyz, or `mqctl health`): an agent waiting for its peers is
# alive, and a tool that restarts unhealthy containers must not restart it,
# since a restart costs the cluster a voter (DESIGN.md section 6). bash talks
# HTTP/1.0 over /dev/tcp, so no curl is installed for this. It reads the port
# from MEMQUORUM_HTTP_PORT; a port given with --http-port must be given there.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${MEMQUORUM_HTTP_PORT:-9090} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && IFS= read -r -t 2 status <&3 && [[ $status == 'HTTP/1.'?' 200 '* ]]"]

# The agent handles SIGTERM itself: readiness goes to 503, shard leadership
# is handed to other replicas, then it exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/memquorum"]
