# meshd as the single process of a container (docs/deploy.md). Multi-stage: the build stage
# has the compiler and the -dev packages, the runtime stage only the shared libraries.
# Built and run by tests/deploy/container.sh (podman, a locally made debian:bookworm-slim).

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make cmake pkg-config \
      libuv1-dev libpq-dev libyaml-dev libcjson-dev libcurl4-openssl-dev \
      libhttp-parser-dev libarchive-dev libssl-dev libxxhash-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads; the tests are not built (MESHD_TESTS=OFF).
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY supervisor supervisor
COPY workers workers
COPY sql sql
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMESHD_TESTS=OFF \
 && cmake --build build -j"$(nproc)" \
 && DESTDIR=/staging cmake --install build --prefix /usr/local --strip

FROM debian:bookworm-slim
# curl is for the HEALTHCHECK only (libcurl is already there for meshctl).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libuv1 libpq5 libyaml-0-2 libcjson1 \
      libcurl4 libhttp-parser2.9 libarchive13 tzdata ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/meshd --no-create-home \
      --shell /usr/sbin/nologin meshd \
 && install -d -o meshd -g meshd -m 0750 /var/lib/meshd
COPY --from=build /staging/usr/local /usr/local
COPY conf/meshd.container.yaml /etc/meshd/meshd.yaml
# PORT: the platform's port replaces the one in http.listen. MESHD_CONFIG lets
# `meshctl status` inside the container find the socket without options.
ENV PORT=8080 \
    MESHD_CONFIG=/etc/meshd/meshd.yaml \
    MESHD_WORKER_DIR=/usr/local/libexec/meshd
# The state directory (catch-up times, the socket). No VOLUME line: Railway refuses
# Dockerfiles that have one; mount a volume here instead (docs/deploy.md).
WORKDIR /var/lib/meshd
USER meshd
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null --max-time 4 "http://127.0.0.1:${PORT}/health" || exit 1
# meshd is PID 1: it reaps orphans, stops its jobs on SIGTERM and logs to stderr.
ENTRYPOINT ["/usr/local/bin/meshd", "-c", "/etc/meshd/meshd.yaml"]
