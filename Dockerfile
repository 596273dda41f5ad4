# Easy Deploy itself as a container image: the `easydeploy` server (API + edge
# proxy) driving the host's Docker engine.
#
#   docker build -t easydeploy .
#   docker run -d --name easydeploy --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v easydeploy-data:/var/lib/easydeploy \
#     easydeploy
#   docker exec easydeploy cat /var/lib/easydeploy/admin.token   # the admin API token
#   docker exec easydeploy easydeploy apps                        # the CLI, inside
#
# --network host: the edge proxy reaches replicas on their Docker bridge
# addresses, which only the host's network namespace can route to (it also puts
# the API on :8080 and the apps on :8000 of every host interface).
# Deploying a local path means the path must exist inside this container too
# (mount it); a build CA bundle is mounted and named with
# -e EASYDEPLOY_BUILD_CA_BUNDLE=/path/inside. Base images: the host's engine
# must have them (scripts/build-base-images.sh) or be able to pull them.
#
# Hosts that cannot pull images (no registry reachable) cannot build this file:
# run the binary directly instead (`cargo build --release -p easydeploy`, then
# `target/release/easydeploy server`, or `sudo scripts/quickstart.sh`).

FROM rust:1-bookworm AS build
WORKDIR /src
# .cargo/config.toml points the target dir at the host's /var/tmp; keep it here.
ENV CARGO_TARGET_DIR=/src/target
COPY . .
RUN cargo build --release --locked -p easydeploy \
 && install -m 0755 target/release/easydeploy /usr/local/bin/easydeploy

FROM debian:bookworm-slim
# libssl3 + ca-certificates: HTTPS to git hosts (libgit2 links OpenSSL);
# git: the CLI for debugging in the container, and it brings libssh2-1, which
# the binary links when the build stage found a system libssh2.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/easydeploy /usr/local/bin/easydeploy
ENV EASYDEPLOY_DATA_DIR=/var/lib/easydeploy \
    EASYDEPLOY_API_ADDR=0.0.0.0:8080 \
    EASYDEPLOY_PROXY_ADDR=0.0.0.0:8000
VOLUME /var/lib/easydeploy
WORKDIR /var/lib/easydeploy
EXPOSE 8080 8000
ENTRYPOINT ["easydeploy"]
CMD ["server"]
