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
# bench_start_server is bench_server_env (ports, environment) followed by
# bench_run_server (start, wait); bench_cleanup is bench_stop_server and
# bench_keep_log, for scripts with cleanup steps of their own.
#
# Sourced, not run: it sets no shell options of its own (the caller runs
# with `set -euo pipefail`).

say() { printf '\n==> %s\n' "$*"; }
die() {
  printf '\nbench: error: %s\n' "$*" >&2
  exit 1
}
now() { date +%s.%N; }

# Dies unless PROFILE is debug or release; sets cargo_profile (the cargo
# arguments for it).
bench_check_profile() {
  case "$1" in
    debug) cargo_profile=() ;;
    release) cargo_profile=(--release) ;;
    *) die "BENCH_PROFILE must be debug or release (got '$1')" ;;
  esac
}

# Builds easydeploy with the profile (debug or release) and sets BIN.
bench_build() {
  local profile=$1
  bench_check_profile "$profile"
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

# Picks free ports for a server with its data under WORK/data. Exports
# EASYDEPLOY_DATA_DIR, _API_ADDR, _PROXY_ADDR, _URL and PROXY_PORT, unsets
# EASYDEPLOY_TOKEN; sets LOG (where the server's output will go).
bench_server_env() {
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
}

# Starts `$BIN server` with the settings of bench_server_env and waits for
# /healthz; sets server_pid.
bench_run_server() {
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

# Starts `$BIN server` with its data under WORK/data on free ports and waits
# for /healthz: bench_server_env, then bench_run_server.
bench_start_server() {
  bench_server_env "$1"
  bench_run_server
}

# Destroys APP and stops the server (SIGTERM, SIGKILL after 15 s), if it runs.
bench_stop_server() {
  local app=$1
  if [ -n "${server_pid:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
    printf '\n==> cleaning up: destroying %s, stopping the server (pid %s)\n' "$app" "$server_pid"
    timeout 60 "$BIN" destroy "$app" >/dev/null 2>&1 || echo "warning: could not destroy the app $app" >&2
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 30); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      kill -9 "$server_pid" 2>/dev/null || true
    fi
  fi
}

# When RC is not 0, copies the server's log to $TMPDIR/NAME (default
# easydeploy-SCRIPT-server.log) and prints its last lines.
bench_keep_log() {
  local rc=$1
  local name=${2:-easydeploy-$(basename "$0" .sh)-server.log}
  if [ "$rc" -ne 0 ] && [ -s "${LOG:-}" ]; then
    local kept="${TMPDIR:-/tmp}/$name"
    cp "$LOG" "$kept"
    echo "server log: $kept (last lines below)" >&2
    tail -n 15 "$LOG" >&2
  fi
}

# EXIT trap: destroys APP, stops the server, keeps its log when the script
# failed (as LOG_NAME, see bench_keep_log), removes $work. Call as
# `trap 'bench_cleanup APP [LOG_NAME]' EXIT`.
bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  bench_stop_server "$1"
  bench_keep_log "$rc" ${2+"$2"}
  [ -n "${work:-}" ] && rm -rf "$work"
  exit "$rc"
}
