#!/usr/bin/env bash
# Shared helpers of the benchmark scripts: messages, building the binary,
# free ports, and a server of its own (temporary data dir, free ports) that
# is stopped, with its app destroyed, on exit.
#
#   source "$REPO_ROOT/scripts/lib.sh"
#   bench_build debug            # sets BIN
#   bench_start_server "$work"   # sets server_pid, LOG; exports EASYDEPLOY_*
#   trap 'bench_cleanup myapp' EXIT
#
# Sourced, not run: it sets no shell options of its own (the caller runs
# with `set -euo pipefail`).

say() { printf '\n==> %s\n' "$*"; }
die() {
  printf '\nbench: error: %s\n' "$*" >&2
  exit 1
}
now() { date +%s.%N; }

# Builds easydeploy with the profile (debug or release) and sets BIN.
bench_build() {
  local profile=$1
  local cargo_profile=()
  case "$profile" in
    debug) ;;
    release) cargo_profile=(--release) ;;
    *) die "BENCH_PROFILE must be debug or release (got '$profile')" ;;
  esac
  say "building easydeploy ($profile)"
  cargo build -p easydeploy ${cargo_profile[@]+"${cargo_profile[@]}"}
  local target_dir
  target_dir=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  BIN="$target_dir/$profile/easydeploy"
  [ -x "$BIN" ] || die "the build did not produce $BIN"
}

# Prints two free TCP ports on 127.0.0.1.
bench_free_ports() {
  python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
'
}

# Starts `$BIN server` with its data under WORK/data on free ports and waits
# for /healthz. Exports EASYDEPLOY_DATA_DIR, _API_ADDR, _PROXY_ADDR, _URL;
# sets server_pid and LOG (the server's output); exports PROXY_PORT.
bench_start_server() {
  local work=$1
  local api_port proxy_port
  read -r api_port proxy_port < <(bench_free_ports)
  export EASYDEPLOY_DATA_DIR="$work/data"
  export EASYDEPLOY_API_ADDR="127.0.0.1:$api_port"
  export EASYDEPLOY_PROXY_ADDR="127.0.0.1:$proxy_port"
  export EASYDEPLOY_URL="http://127.0.0.1:$api_port"
  unset EASYDEPLOY_TOKEN
  export PROXY_PORT=$proxy_port
  LOG="$work/server.log"
  say "starting a server: API $EASYDEPLOY_URL, proxy $EASYDEPLOY_PROXY_ADDR, data $EASYDEPLOY_DATA_DIR"
  mkdir -p "$EASYDEPLOY_DATA_DIR"
  setsid "$BIN" server >"$LOG" 2>&1 </dev/null &
  server_pid=$!
  for _ in $(seq 120); do
    curl -fsS --max-time 2 "$EASYDEPLOY_URL/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || die "the server stopped while starting"
    sleep 0.5
  done
  die "the server did not answer within 60 s"
}

# EXIT trap: destroys APP, stops the server, keeps its log when the script
# failed, removes $work. Call as `trap 'bench_cleanup APP' EXIT`.
bench_cleanup() {
  local rc=$?
  local app=$1
  trap - EXIT INT TERM
  if [ -n "${server_pid:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
    printf '\n==> cleaning up: destroying %s, stopping the server (pid %s)\n' "$app" "$server_pid"
    timeout 60 "$BIN" destroy "$app" >/dev/null 2>&1 || echo "warning: could not destroy the app $app" >&2
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 30); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -0 "$server_pid" 2>/dev/null && kill -9 "$server_pid" 2>/dev/null
  fi
  if [ "$rc" -ne 0 ] && [ -s "${LOG:-}" ]; then
    local kept
    kept="${TMPDIR:-/tmp}/easydeploy-$(basename "$0" .sh)-server.log"
    cp "$LOG" "$kept"
    echo "server log: $kept (last lines below)" >&2
    tail -n 15 "$LOG" >&2
  fi
  [ -n "${work:-}" ] && rm -rf "$work"
  exit "$rc"
}
