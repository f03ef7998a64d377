# syntax=docker/dockerfile:1
# Container images for shakeout: the node agent and the controller, from one build.
#
#   docker build --target agent      -t REGISTRY/shakeout-agent:0.1.0 .
#   docker build --target controller -t REGISTRY/shakeout:0.1.0 .
#
# Then set agent.image.repository and controller.image.repository in the Helm chart.
# This project's CI has no container engine: scripts/chart-check lints this file (stages,
# COPY sources, .dockerignore, binary names) but nothing here has been built by it.

FROM rust:1-bookworm AS build
WORKDIR /src
# Only what `cargo build` reads (see .dockerignore): manifests, sources, the demo
# experiment the controller embeds, and the agent's declared bench target.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY agent ./agent
COPY experiments ./experiments
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p shakeout -p shakeout-agent --bins \
 && mkdir -p /out \
 && cp target/release/shakeout target/release/shakeout-agent /out/

# The agent: root with the capabilities the chart grants (NET_ADMIN, SYS_ADMIN, KILL,
# SYS_PTRACE), and the tools its network faults run: nft, iptables (Debian's default
# nft backend), tc and ip.
FROM debian:bookworm-slim AS agent
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iptables iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/shakeout-agent /usr/local/bin/shakeout-agent
USER 0
EXPOSE 7433
ENTRYPOINT ["/usr/local/bin/shakeout-agent"]
CMD ["--listen", "0.0.0.0:7433", "--tokens", "/etc/shakeout-agent/auth/tokens", "--state-dir", "/var/lib/shakeout-agent", "--log-format", "json"]

# The controller: non-root (uid 65532, the chart's runAsUser). Debian slim rather than
# distroless: the game-day CronJobs use /bin/sh and date to name reports
# NAME-TIMESTAMP.* and to print the Markdown summary to the job log, and exec faults
# often want a shell. No other tools are added.
FROM debian:bookworm-slim AS controller
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/shakeout /usr/local/bin/shakeout
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/shakeout"]
CMD ["--help"]
