# Dockerfile: pgenrich on Debian 12, in two stages: `build` compiles with the -dev packages,
# `runtime` (the default, last stage) holds the binary, its five runtime libraries and a
# non-root user. The `mockapi` stage is the test/demo mock API that docker-compose.yml runs.
#   docker build -t pgenrich .
#   docker run --rm -e PGENRICH_TOKEN_FILE=/run/secrets/token -v "$PWD/token:/run/secrets/token:ro" \
#       pgenrich run --dsn "host=db dbname=app" --job nightly --base-url https://api.example.com

FROM debian:12 AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libpq-dev libcurl4-openssl-dev libev-dev libjson-c-dev libinih-dev libmicrohttpd-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads: a change to the tests or the scripts keeps the cache.
COPY CMakeLists.txt README.md ./
COPY cmake cmake
COPY sql sql
COPY src src
COPY docs docs
COPY packaging packaging
COPY tests/mockapi tests/mockapi
# No tests (cmocka), but the mock API; installed under /usr into /stage.
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
        -DPGENRICH_MOCKAPI=ON -DCMAKE_INSTALL_PREFIX=/usr \
    && cmake --build /build -j"$(nproc)" \
    && DESTDIR=/stage cmake --install /build --strip

FROM debian:12-slim AS mockapi
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd12 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin mockapi
COPY --from=build /build/pgenrich-mockapi /usr/bin/pgenrich-mockapi
USER 10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/pgenrich-mockapi", "--host", "0.0.0.0", "--port", "8080"]

FROM debian:12-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates libpq5 libcurl4 libev4 libjson-c5 libinih1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin pgenrich
COPY --from=build /stage/usr/bin/pgenrich /usr/bin/pgenrich
COPY --from=build /stage/usr/share/man/man1/pgenrich.1.gz /usr/share/man/man1/
COPY --from=build /stage/usr/share/doc/pgenrich/example.ini /usr/share/doc/pgenrich/
USER 10001
ENTRYPOINT ["/usr/bin/pgenrich"]
CMD ["help"]
