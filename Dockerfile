# MemQuorum sidecar agent image.
#
#   docker build -t memquorum:latest .
#
# Stage 1 compiles the agent (memquorum) and its CLI (mqctl) on Debian 12 with
# the same packages scripts/install-deps.sh installs for a developer. Stage 2
# carries only the two binaries and the shared libraries they load, and runs
# them as an unprivileged user.
#
# The API port binds to 127.0.0.1 by default (the app container of the same
# pod reaches it on localhost). To publish it from a standalone container set
# MEMQUORUM_API_BIND=0.0.0.0, as docker-compose.yml does.

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
# Sources only (see .dockerignore); tests/ is needed because the top-level
# CMakeLists.txt adds it, even though no test target is built here.
COPY CMakeLists.txt ./
COPY cmake ./cmake
COPY proto ./proto
COPY agent ./agent
COPY tools ./tools
COPY tests ./tests

RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE} \
 && cmake --build build --target memquorum mqctl \
 && strip --strip-unneeded build/bin/memquorum build/bin/mqctl \
 && build/bin/memquorum --help >/dev/null

# -------------------------------------------------------------- runtime ----
FROM ${DEBIAN_IMAGE} AS runtime

ARG DEBIAN_FRONTEND=noninteractive

# Runtime libraries of the binaries (Debian 12 package names):
#   libgrpc29        gRPC C core (pulls libabsl20220623, libre2-9, libc-ares2,
#                    libprotobuf32, libstdc++6)
#   libprotobuf-c1   protobuf-c runtime
#   librdkafka1      Kafka consumer
#   libcurl4         Nacos client (HTTP)
#   libwebsockets17  change feed, /healthz, /readyz, /metrics
#   libmimalloc2.0   the agent's malloc (agent/util/alloc.h says why)
#   libssl3 zlib1g   TLS and compression used by the above
#   ca-certificates  TLS to brokers and Nacos
#   curl             the HEALTHCHECK probe
# jsmn is header-only and needs no runtime package.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc29 libprotobuf-c1 librdkafka1 libcurl4 libwebsockets17 \
      libmimalloc2.0 libssl3 zlib1g ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 memquorum \
 && useradd --system --uid 10001 --gid memquorum --no-create-home \
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

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS --max-time 2 "http://127.0.0.1:${MEMQUORUM_HTTP_PORT:-9090}/healthz" >/dev/null || exit 1

# The agent handles SIGTERM itself: readiness goes to 503, shard leadership
# is handed to other replicas, then it exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/memquorum"]
