# syntax=docker/dockerfile:1
# Trove in a container: `docker build -t trove .` The build needs no database: sqlx checks
# its queries against the committed .sqlx/ data (SQLX_OFFLINE). Migrations are compiled into
# the binary, so the same image runs `trove migrate`.

FROM rust:1-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true CARGO_TERM_COLOR=never
# benches/ and loadtest/ are part of the workspace manifest, so cargo needs them present.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY .sqlx .sqlx
COPY migrations migrations
COPY sql sql
COPY src src
COPY benches benches
COPY loadtest loadtest
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p trove \
    && cp target/release/trove /usr/local/bin/trove

FROM debian:bookworm-slim
# curl only serves the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin trove
COPY --from=build /usr/local/bin/trove /usr/local/bin/trove
USER 10001:10001
ENV TROVE_LISTEN=0.0.0.0:8080 TROVE_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8080/healthz >/dev/null || exit 1
# Set TROVE_SHARDS and TROVE_JWT_SECRET (see README, Configuration).
ENTRYPOINT ["trove"]
CMD ["serve"]
