#!/usr/bin/env bash
# Edge proxy benchmark: Easy Deploy's edge proxy against nginx, HAProxy and
# Caddy, in the same run, in front of the same upstream: an app deployed by
# the platform (a FROM-scratch image holding a small static HTTP server,
# `crates/edge/examples/bench.rs upstream`). The peers reach it on its
# bridge address; the edge, as the platform runs it, from inside the
# replica's network namespace (`--edge-dial namespace`, the default; run
# with EASYDEPLOY_EDGE_DIAL=bridge in the environment for the bridge path).
#
#   sudo scripts/bench-proxy.sh                  # 8 s per run, 10000 idle connections
#   sudo DURATION=15 IDLE=20000 PASSES=5 scripts/bench-proxy.sh
#   sudo scripts/bench-proxy.sh local            # no platform: upstream and edge alone, on loopback
#   sudo scripts/bench-proxy.sh metrics          # only the metrics on/off comparison
#   sudo scripts/bench-proxy.sh instructions     # user-space instructions per request, under callgrind
#
# `local` mode runs the same comparison without Docker or a release build of
# the platform: the upstream is the bench server on loopback and the edge is
# the proxy alone (`bench edge`), so its RSS is the proxy's, not the whole
# server's.
#
# Metrics cost: two standalone edges (`bench edge ... on|off`, the same
# code, traffic metrics collected or not) in front of the same upstream are
# driven alternately with the same wrk settings, ROUNDS times (default 3),
# keep-alive, at each CONNS; the script prints each run's req/s and the
# ratio off ÷ on. `metrics` mode skips the platform and the peers: its
# upstream is the bench server run on loopback (no Docker, no release build
# of the platform); the full run does the same comparison after the peers,
# against the deployed upstream, then the same for two standalone edges
# dialing the replica inside its network namespace or across the bridge,
# with wake-up coalescing on and off, with batched sends on and off, and
# with workers pinned to CPUs (connections steered by CPU) or free.
#
# Instructions: the edge alone (`bench edge`), nginx and HAProxy (one
# process or thread each, the same configuration otherwise) in front of the
# bench server on loopback, each run under `valgrind --tool=callgrind` while
# wrk drives it for DURATION seconds at each CONNS; prints the instructions
# each executed in user space per request (its start-up included, under
# 1 %) and the edge's ratio to each peer. The count does not depend on what
# else the machine is doing, unlike req/s and CPU time; the kernel's share
# of a request (most of it) is not in it. PROFILES=DIR keeps the callgrind
# profiles (`callgrind_annotate DIR/edge-32.out`).
#
# Builds the platform in release mode (cold: ~15 min on 2 cores) and the
# upstream as a static binary; installs nginx-light, haproxy, caddy and wrk
# when missing; starts `easydeploy server` on free ports with a temporary
# data dir and deploys the upstream app; then, for 32 and 256 connections,
# keep-alive and one request per connection (`Connection: close`), runs wrk
# (2 threads, --latency) against the upstream directly and through each
# proxy, PASSES times (default 4, the proxies' order varied each pass), and
# prints the medians of req/s, p50 and p99, errors, the edge's ratio to each
# peer, the keep-alive req/s and p99 of every pass (and in how many passes
# the edge's p99 was the lowest), each proxy's peak RSS over all
# runs, and each proxy's RSS holding IDLE idle keep-alive client
# connections (each opened with one request).
# Every proxy gets the same work: keep-alive to the upstream, X-Forwarded-*
# headers, no access log; and, as the edge pins its workers to CPUs by
# default, nginx's workers and HAProxy's threads are pinned too
# (`worker_cpu_affinity auto`, `cpu-map auto:1/1-N 0-(N-1)`). Every proxy (and the loopback upstream) runs in
# its own session, as a service would: nginx and HAProxy daemonize; the
# server, Caddy and the standalone edges are started with `setsid`, as
# scripts/quickstart.sh starts the server. With the kernel's autogroup
# scheduling (one CPU share per session) a process started from the script
# would share wrk's. Not a test: it prints figures, it asserts nothing.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
DURATION=${DURATION:-8}
IDLE=${IDLE:-10000}
CONNS=(${CONNS:-32 256})
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PASSES=${PASSES:-4}
MODE=${1:-all}
case "$MODE" in all | local | metrics | instructions) ;; *) echo "usage: $0 [all|local|metrics|instructions]" >&2; exit 2 ;; esac
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

say() { printf '[bench] %s\n' "$*" >&2; }
die() {
  printf '[bench] error: %s\n' "$*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (it starts proxies, reads /proc of their processes and uses Docker)"
missing=()
TOOLS=(nginx:nginx-light haproxy:haproxy caddy:caddy wrk:wrk)
[ "$MODE" = metrics ] && TOOLS=(wrk:wrk)
[ "$MODE" = instructions ] && TOOLS=(nginx:nginx-light haproxy:haproxy wrk:wrk valgrind:valgrind)
for tool in "${TOOLS[@]}"; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ "$MODE" != all ] || docker info >/dev/null 2>&1 || die "the Docker engine is not running (sudo scripts/setup.sh)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# CPU time stolen by the hypervisor, and all CPU time, in ticks since boot.
steal_ticks() { awk '/^cpu / { print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

# --- build -----------------------------------------------------------------------
TARGET=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ "$MODE" = all ]; then
  say "building easydeploy (release) into $TARGET"
  cargo build --release -q -p easydeploy
fi
BIN=$TARGET/release/easydeploy
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
say "building the static upstream"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -q -p easydeploy-edge \
  --example bench --target "$TRIPLE" --target-dir "$TARGET/bench-static"
TOOL=$TARGET/bench-static/$TRIPLE/release/examples/bench

WORK=$(mktemp -d /tmp/easydeploy-bench.XXXXXX)
# A free port below the kernel's ephemeral range, for a server this script
# starts: an ephemeral port (what binding port 0 gives) may meanwhile become
# a client's source port, or a readiness poll's self-connection, and the
# server's bind then fails (see crates/testkit).
free_port() {
  python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
while True:
    port = random.randrange(10000, low)
    try:
        socket.create_server(("127.0.0.1", port)).close()
        socket.create_server(("0.0.0.0", port)).close()
        print(port)
        break
    except OSError:
        pass
PY
}
# Waits until URL answers, TRIES tenths of a second at most: wait_http URL TRIES [CURL ARGS]
wait_http() {
  local url=$1 tries=$2
  shift 2
  for _ in $(seq "$tries"); do
    curl -sf "$@" "$url" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}
SERVER_PID=""
PIDFILES=()
IDLE_PIDS=()
EDGE_PIDS=()

cleanup() {
  exec 7>&- 8>&- 2>/dev/null || true
  for pid in "${EDGE_PIDS[@]}" "${IDLE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for file in "${PIDFILES[@]}"; do
    [ -s "$file" ] && kill "$(cat "$file")" 2>/dev/null || true
  done
  if [ -n "$SERVER_PID" ]; then
    "$BIN" destroy bench >/dev/null 2>&1 || true
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- wrk ---------------------------------------------------------------------------
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }
declare -A RPS P50 P99 ERR
# Waits (at most 65 s: TIME_WAIT lasts 60) until fewer than 1,000 of the
# host's connections to the replica are in TIME_WAIT. `Connection: close`
# runs leave that many behind (wrk directly, Caddy across the bridge), and
# the kernel reuses their ports only towards loopback (tcp_tw_reuse=2): the
# next run against the replica's address could then find no free port.
settle_ports() {
  local waited=0
  while [ "$(ss -Htan state time-wait dst "$UPSTREAM" | wc -l)" -gt 1000 ] && [ "$waited" -lt 65 ]; do
    sleep 1
    waited=$((waited + 1))
  done
}
run() { # run NAME URL CONNS MODE
  local name=$1 url=$2 conns=$3 mode=$4 extra=() out
  settle_ports
  [ "$mode" = close ] && extra=(-H 'Connection: close')
  wrk -t"$THREADS" -c"$conns" -d1s -H 'Host: bench.localhost' "${extra[@]}" "$url" >/dev/null 2>&1 || true
  if ! out=$(wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --latency -H 'Host: bench.localhost' "${extra[@]}" "$url" 2>&1); then
    # Say which target stopped answering, and what the server logged last.
    [ -s "$WORK/server.log" ] && printf '[bench] server log (last lines):\n%s\n' "$(tail -20 "$WORK/server.log")" >&2
    [ -n "$SERVER_PID" ] && { kill -0 "$SERVER_PID" 2>/dev/null && say "server: running" || say "server: exited"; }
    docker ps -a --filter label=easydeploy.app=bench --format '[bench] replica {{.Names}}: {{.Status}}' >&2 2>/dev/null || true
    die "wrk against $name ($url, $conns connections, $mode) failed: $(tail -3 <<<"$out")"
  fi
  local key="$name/$conns/$mode"
  # Each pass appends; `median` reduces them once every pass ran.
  RPS[$key]+=" $(awk '/^Requests\/sec/ { printf "%d", $2 }' <<<"$out")"
  P50[$key]+=" $(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")"
  P99[$key]+=" $(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")"
  ERR[$key]=$((${ERR[$key]:-0} + $(awk '/Socket errors/ { gsub(",", ""); e += $4 + $6 + $8 + $10 } /Non-2xx/ { e += $NF } END { print e + 0 }' <<<"$out")))
}
# The keep-alive p99 of a proxy in one pass: pass_p99 NAME CONNS PASS
pass_p99() { awk -v n="$3" '{ print $n }' <<<"${P99_RUNS[$1/$2/keepalive]}"; }
# The median of a list (of an even count: the mean of the middle two).
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }
# The lowest median p99 of the peers: best_p99 CONNS MODE
best_p99() { printf '%s\n' "${P99[nginx/$1/$2]}" "${P99[haproxy/$1/$2]}" "${P99[caddy/$1/$2]}" | sort -g | head -1; }
# How much a proxy's RSS grew holding the idle connections (KiB): growth NAME
growth() { echo $((IDLE_RSS[$1] - BASE_RSS[$1])); }

# CPU time (user, system; clock ticks) of a process.
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

# Two standalone edges in front of $UPSTREAM, the same code with different
# `bench edge` settings, driven alternately (a, b, then b, a, ...),
# keep-alive: compare_edges TITLE A_NAME "A_ARGS" B_NAME "B_ARGS" prints
# each round's req/s, the ratio b ÷ a and the CPU time per request of each
# edge process (user and system, from /proc; less sensitive to other load on
# the machine than req/s).
compare_edges() {
  local title=$1 a=$2 a_args=$3 b=$4 b_args=$5 conns round order variant sum_a sum_b ratios out n u0 s0 u1 s1 port
  declare -A url pid rps cpu p99 name=([a]=$a [b]=$b)
  for variant in a b; do
    port=$(free_port)
    local args=$a_args
    [ "$variant" = b ] && args=$b_args
    mkfifo "$WORK/edge-$variant.in"
    # shellcheck disable=SC2086 # the settings are words
    setsid "$TOOL" edge "127.0.0.1:$port" bench "$UPSTREAM" $args <"$WORK/edge-$variant.in" >"$WORK/edge-$variant.log" 2>&1 &
    EDGE_PIDS+=($!)
    pid[$variant]=$!
    url[$variant]="http://127.0.0.1:$port/"
    if [ "$variant" = a ]; then exec 7>"$WORK/edge-a.in"; else exec 8>"$WORK/edge-b.in"; fi
    wait_http "${url[$variant]}" 50 -H 'Host: bench.localhost' || die "edge on :$port does not answer"
  done
  echo
  echo "$title — $(date -u +%Y-%m-%dT%H:%MZ), wrk -t$THREADS -d${DURATION}s keep-alive, upstream $UPSTREAM, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '%-6s %-6s %12s %12s %9s %22s %22s %10s %10s\n' conns round "$a req/s" "$b req/s" "$b ÷ $a" "$a CPU µs/req usr+sys" "$b CPU µs/req usr+sys" "$a p99" "$b p99"
  for conns in "${CONNS[@]}"; do
    sum_a=0
    sum_b=0
    ratios=()
    for round in $(seq "$ROUNDS"); do
      order="a b"
      [ $((round % 2)) -eq 0 ] && order="b a"
      for variant in $order; do
        say "$title, ${name[$variant]}: $conns connections, round $round"
        wrk -t"$THREADS" -c"$conns" -d1s -H 'Host: bench.localhost' "${url[$variant]}" >/dev/null 2>&1 || true
        read -r u0 s0 < <(cpu_ticks "${pid[$variant]}")
        out=$(wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --latency -H 'Host: bench.localhost' "${url[$variant]}" 2>&1)
        read -r u1 s1 < <(cpu_ticks "${pid[$variant]}")
        n=$(awk '/requests in/ { print $1 }' <<<"$out")
        rps[$variant]=$(awk '/^Requests\/sec/ { printf "%d", $2 }' <<<"$out")
        p99[$variant]=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")ms
        cpu[$variant]=$(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="${n:-0}" -v hz="$(getconf CLK_TCK)" \
          'BEGIN { if (n > 0) printf "%.2f+%.2f", u * 1e6 / hz / n, s * 1e6 / hz / n; else print "-" }')
      done
      sum_a=$((sum_a + rps[a]))
      sum_b=$((sum_b + rps[b]))
      ratios+=("$(ratio "${rps[b]}" "${rps[a]}")")
      printf '%-6s %-6s %12s %12s %9s %22s %22s %10s %10s\n' "$conns" "$round" "${rps[a]}" "${rps[b]}" \
        "$(ratio "${rps[b]}" "${rps[a]}")" "${cpu[a]}" "${cpu[b]}" "${p99[a]}" "${p99[b]}"
    done
    printf '%-6s %-6s %12s %12s %9s\n' "$conns" mean "$((sum_a / ROUNDS))" "$((sum_b / ROUNDS))" "$(ratio "$sum_b" "$sum_a")"
    printf '%-6s %-6s %12s %12s %9s\n' "$conns" median '' '' \
      "$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : sprintf("%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2) }')"
  done
  echo "(load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
  exec 7>&- 8>&-
  kill "${pid[a]}" "${pid[b]}" 2>/dev/null || true
  rm -f "$WORK/edge-a.in" "$WORK/edge-b.in"
}

# nginx's configuration: nginx_conf FILE PORT "PROCESS DIRECTIVES"
nginx_conf() {
  cat >"$1" <<EOF
$3
worker_rlimit_nofile $NOFILE;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections $((NOFILE / 2)); }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream app { server $UPSTREAM; keepalive 1024; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$2;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
    }
  }
}
EOF
}

# HAProxy's configuration: haproxy_conf FILE PORT THREADS
haproxy_conf() {
  cat >"$1" <<EOF
global
  maxconn $((NOFILE / 2 - 100))
  nbthread $3
  $([ "$3" -gt 1 ] && echo "cpu-map auto:1/1-$3 0-$(($3 - 1))")
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option forwardfor
  http-reuse always
frontend edge
  bind 127.0.0.1:$2
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend app
backend app
  server app1 $UPSTREAM
EOF
}

# User-space instructions per request of the edge, nginx and HAProxy under
# callgrind (see the header).
instructions() {
  local out=${PROFILES:-$WORK} name conns port pid n ir
  declare -A PER
  mkdir -p "$out"
  nginx_conf "$WORK/nginx.conf" "$(free_port)" "worker_processes 1; daemon off; master_process off;"
  haproxy_conf "$WORK/haproxy.cfg" "$(free_port)" 1
  echo
  echo "User-space instructions per request — $(date -u +%Y-%m-%dT%H:%MZ), callgrind, wrk -t$THREADS -d${DURATION}s keep-alive, upstream $UPSTREAM (bench server on loopback)"
  printf '%-8s %-6s %10s %16s %12s\n' proxy conns requests instructions 'per request'
  for conns in "${CONNS[@]}"; do
    for name in edge nginx haproxy; do
      case $name in
        edge)
          port=$(free_port)
          set -- "$TOOL" edge "127.0.0.1:$port" bench "$UPSTREAM" on
          ;;
        nginx)
          port=$(sed -n 's/.*listen 127.0.0.1:\([0-9]*\);/\1/p' "$WORK/nginx.conf")
          set -- nginx -c "$WORK/nginx.conf"
          ;;
        haproxy)
          port=$(sed -n 's/.*bind 127.0.0.1:\([0-9]*\)/\1/p' "$WORK/haproxy.cfg")
          set -- haproxy -db -f "$WORK/haproxy.cfg"
          ;;
      esac
      say "callgrind: $name, $conns connections"
      # The edge serves until its standard input closes: a pipe held open meanwhile.
      mkfifo "$WORK/cg.in"
      setsid valgrind --tool=callgrind --callgrind-out-file="$out/$name-$conns.out" "$@" \
        <"$WORK/cg.in" >"$WORK/cg-$name.log" 2>&1 &
      pid=$!
      exec 6>"$WORK/cg.in"
      wait_http "http://127.0.0.1:$port/" 300 -H 'Host: bench.localhost' ||
        die "$name under callgrind does not answer: $(tail -3 "$WORK/cg-$name.log")"
      n=$(wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" -H 'Host: bench.localhost' "http://127.0.0.1:$port/" | awk '/requests in/ { print $1 }')
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      exec 6>&-
      rm -f "$WORK/cg.in"
      ir=$(awk '/Collected/ { gsub(",", "", $4); print $4 }' "$WORK/cg-$name.log")
      [ -n "$ir" ] && [ "${n:-0}" -gt 0 ] || die "no callgrind count for $name: $(tail -3 "$WORK/cg-$name.log")"
      PER[$name/$conns]=$((ir / n))
      printf '%-8s %-6s %10s %16s %12s\n' "$name" "$conns" "$n" "$ir" "${PER[$name/$conns]}"
    done
    echo "edge ÷ nginx $(ratio "${PER[edge/$conns]}" "${PER[nginx/$conns]}"), edge ÷ HAProxy $(ratio "${PER[edge/$conns]}" "${PER[haproxy/$conns]}") at $conns connections"
  done
}

# Metrics on vs off (off ÷ on above 1: what collecting the metrics costs).
metrics_cost() { compare_edges "Edge metrics cost" on on off off; }

if [ "$MODE" = metrics ] || [ "$MODE" = instructions ]; then
  ulimit -n "$(ulimit -Hn)"
  NOFILE=$(ulimit -n)
  UPSTREAM_PORT=$(free_port)
  setsid "$TOOL" upstream "$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
  EDGE_PIDS+=($!)
  UPSTREAM=127.0.0.1:$UPSTREAM_PORT
  sleep 0.5
  if [ "$MODE" = metrics ]; then metrics_cost; else instructions; fi
  exit 0
fi

# --- platform and app ----------------------------------------------------------------
# Each idle client connection holds a descriptor in the client and in the proxy.
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
[ "$NOFILE" -gt $((IDLE + 2000)) ] || die "open files limit $NOFILE is too low for IDLE=$IDLE"
API_PORT=$(free_port)
EDGE_PORT=$(free_port)
NGINX_PORT=$(free_port)
HAPROXY_PORT=$(free_port)
CADDY_PORT=$(free_port)
export EASYDEPLOY_URL=http://127.0.0.1:$API_PORT EASYDEPLOY_DATA_DIR=$WORK/data

if [ "$MODE" = all ]; then
  say "starting easydeploy server (API :$API_PORT, edge :$EDGE_PORT)"
  setsid "$BIN" server --data-dir "$WORK/data" --api-addr "127.0.0.1:$API_PORT" \
    --proxy-addr "127.0.0.1:$EDGE_PORT" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  EDGE_MAIN=$SERVER_PID
  wait_http "$EASYDEPLOY_URL/healthz" 100 || die "the server did not start: $(tail -5 "$WORK/server.log")"

  mkdir -p "$WORK/app"
  cp "$TOOL" "$WORK/app/bench"
  cat >"$WORK/app/Dockerfile" <<'EOF'
FROM scratch
COPY bench /bench
EXPOSE 8080
CMD ["/bench", "upstream", "8080"]
EOF
  git -C "$WORK/app" init -q -b main
  git -C "$WORK/app" add -A
  git -C "$WORK/app" -c user.name=bench -c user.email=bench@localhost commit -q -m bench
  say "deploying the upstream app"
  "$BIN" deploy "$WORK/app" --name bench >"$WORK/deploy.log" 2>&1 || die "deploy failed: $(cat "$WORK/deploy.log")"
  CONTAINER=$(docker ps -q --filter label=easydeploy.app=bench | head -1)
  UPSTREAM_IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$CONTAINER" | awk '{print $1}')
  UPSTREAM=$UPSTREAM_IP:8080
  say "upstream: $UPSTREAM (container ${CONTAINER:0:12})"
else
  UPSTREAM_PORT=$(free_port)
  setsid "$TOOL" upstream "$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
  EDGE_PIDS+=($!)
  UPSTREAM=127.0.0.1:$UPSTREAM_PORT
  mkfifo "$WORK/edge.in"
  setsid "$TOOL" edge "127.0.0.1:$EDGE_PORT" bench "$UPSTREAM" on <"$WORK/edge.in" >"$WORK/edge.log" 2>&1 &
  EDGE_MAIN=$!
  EDGE_PIDS+=($EDGE_MAIN)
  exec 5>"$WORK/edge.in"
  sleep 0.5
  say "upstream: $UPSTREAM (bench server on loopback), edge alone on :$EDGE_PORT"
fi

# --- peers -------------------------------------------------------------------------
nginx_conf "$WORK/nginx.conf" "$NGINX_PORT" "worker_processes auto; worker_cpu_affinity auto;"
haproxy_conf "$WORK/haproxy.cfg" "$HAPROXY_PORT" "$(nproc)"
cat >"$WORK/Caddyfile" <<EOF
{
  admin off
  auto_https off
  storage file_system $WORK/caddy
}
http://:$CADDY_PORT {
  bind 127.0.0.1
  reverse_proxy $UPSTREAM
}
EOF
nginx -c "$WORK/nginx.conf"
PIDFILES+=("$WORK/nginx.pid")
haproxy -f "$WORK/haproxy.cfg" -D -p "$WORK/haproxy.pid"
PIDFILES+=("$WORK/haproxy.pid")
XDG_DATA_HOME=$WORK/caddy XDG_CONFIG_HOME=$WORK/caddy setsid caddy run --config "$WORK/Caddyfile" \
  --adapter caddyfile >"$WORK/caddy.log" 2>&1 &
echo $! >"$WORK/caddy.pid"
PIDFILES+=("$WORK/caddy.pid")
sleep 1

NAMES=(edge nginx haproxy caddy)
declare -A PORT=([edge]=$EDGE_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT [caddy]=$CADDY_PORT)
declare -A MAIN=([edge]=$EDGE_MAIN [nginx]=$(cat "$WORK/nginx.pid") [haproxy]=$(cat "$WORK/haproxy.pid") [caddy]=$(cat "$WORK/caddy.pid"))

# Processes of a proxy: its main process and its children (nginx workers).
pids_of() { echo "${MAIN[$1]}" $(pgrep -P "${MAIN[$1]}" 2>/dev/null || true); }
# Sum of a /proc/PID/status field (kB) over a proxy's processes.
mem_of() {
  local total=0 pid kb
  for pid in $(pids_of "$1"); do
    kb=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}
for name in "${NAMES[@]}"; do
  curl -sf -H 'Host: bench.localhost' "http://127.0.0.1:${PORT[$name]}/" >/dev/null ||
    die "$name does not answer on :${PORT[$name]}"
done

# --- throughput and latency --------------------------------------------------------------
STEAL_START=$(steal_ticks)
for name in "${NAMES[@]}"; do
  for pid in $(pids_of "$name"); do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
done
# PASSES passes over every setting, the proxies in the orders of a Williams
# square (0 1 3 2, 1 2 0 3, 2 3 1 0, 3 0 2 1 for four): over four passes each
# proxy runs once in each position and right after each other proxy once, so
# none always follows the same one (a plain rotation put the edge after
# Caddy in three passes of five) or always runs first after a change of
# setting.
order_of() { # PASS -> the proxies' indices in that pass's order
  local n=${#NAMES[@]} i k=1 base=(0)
  for ((i = 1; i < n; i++)); do
    if ((i % 2)); then base+=("$k"); else base+=($((n - k))); k=$((k + 1)); fi
  done
  for i in "${base[@]}"; do echo $(((i + $1 - 1) % n)); done
}
for pass in $(seq "$PASSES"); do
  for conns in "${CONNS[@]}"; do
    for mode in keepalive close; do
      say "wrk: pass $pass of $PASSES, $conns connections, $mode"
      run direct "http://$UPSTREAM/" "$conns" "$mode"
      for i in $(order_of "$pass"); do
        name=${NAMES[$i]}
        run "$name" "http://127.0.0.1:${PORT[$name]}/" "$conns" "$mode"
      done
    done
  done
done
declare -A RUNS P99_RUNS
for key in "${!RPS[@]}"; do
  RUNS[$key]=${RPS[$key]}
  P99_RUNS[$key]=${P99[$key]}
  RPS[$key]=$(median "${RPS[$key]}")
  P50[$key]=$(median "${P50[$key]}")
  P99[$key]=$(median "${P99[$key]}")
done
declare -A PEAK
for name in "${NAMES[@]}"; do PEAK[$name]=$(mem_of "$name" VmHWM); done

# --- idle connections --------------------------------------------------------------------
declare -A IDLE_RSS BASE_RSS OPEN
for name in "${NAMES[@]}"; do
  say "$IDLE idle connections to $name"
  BASE_RSS[$name]=$(mem_of "$name" VmRSS)
  fifo=$WORK/idle-$name.in
  mkfifo "$fifo"
  "$TOOL" idle "127.0.0.1:${PORT[$name]}" bench.localhost "$IDLE" <"$fifo" >"$WORK/idle-$name.out" 2>"$WORK/idle-$name.err" &
  IDLE_PIDS+=($!)
  exec 9>"$fifo"
  for _ in $(seq 600); do
    grep -q '^ready' "$WORK/idle-$name.out" && break
    sleep 0.1
  done
  sleep 1
  IDLE_RSS[$name]=$(mem_of "$name" VmRSS)
  OPEN[$name]=$(awk '/^ready/ { print $2 }' "$WORK/idle-$name.out")
  exec 9>&-
  wait "${IDLE_PIDS[-1]}" 2>/dev/null || true
  sleep 1
done

# --- report ------------------------------------------------------------------------------
echo
echo "Edge proxy benchmark ($MODE) — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$THREADS -d${DURATION}s, upstream $UPSTREAM"
echo "req/s, p50, p99: medians of $PASSES passes (proxy order varied each pass); errors: their sum"
echo "load average at the start: $LOAD_START, now: $(cut -d' ' -f1-3 /proc/loadavg)"
# The kernel's scheduling group (one per session) of a process.
autogroup() {
  local group
  group=$(sed -n 's|^/autogroup-\([0-9]*\).*|\1|p' "/proc/$1/autogroup" 2>/dev/null || true)
  echo "${group:-?}"
}
echo "autogroups (one CPU share each): wrk $(autogroup $$)$(for name in "${NAMES[@]}"; do printf ', %s %s' "$name" "$(autogroup "${MAIN[$name]}")"; done)"
read -r steal0 all0 <<<"$STEAL_START"
read -r steal1 all1 < <(steal_ticks)
echo "CPU time stolen by the hypervisor from the first pass to this report: $(awk -v s=$((steal1 - steal0)) -v a=$((all1 - all0)) 'BEGIN { printf "%.1f %%", a ? 100 * s / a : 0 }')"
echo "versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | awk '{print "HAProxy", $3}'), caddy $(caddy version | awk '{print $1}'), easydeploy release build"
echo
printf '%-8s %-6s %-10s %10s %9s %9s %8s\n' proxy conns mode 'req/s' 'p50 ms' 'p99 ms' errors
for conns in "${CONNS[@]}"; do
  for mode in keepalive close; do
    for name in direct "${NAMES[@]}"; do
      key="$name/$conns/$mode"
      printf '%-8s %-6s %-10s %10s %9s %9s %8s\n' "$name" "$conns" "$mode" "${RPS[$key]}" "${P50[$key]}" "${P99[$key]}" "${ERR[$key]}"
    done
  done
done
echo
echo "edge req/s ÷ peer req/s (p99: edge ms / best peer ms)"
printf '%-6s %-10s %8s %8s %8s %12s\n' conns mode nginx haproxy caddy 'p99 vs best'
for conns in "${CONNS[@]}"; do
  for mode in keepalive close; do
    e=${RPS[edge/$conns/$mode]}
    best=$(best_p99 "$conns" "$mode")
    printf '%-6s %-10s %8s %8s %8s %12s\n' "$conns" "$mode" \
      "$(ratio "$e" "${RPS[nginx/$conns/$mode]}")" "$(ratio "$e" "${RPS[haproxy/$conns/$mode]}")" \
      "$(ratio "$e" "${RPS[caddy/$conns/$mode]}")" "${P99[edge/$conns/$mode]}/$best"
  done
done
echo
echo "req/s of each pass, in the order run (keep-alive)"
for conns in "${CONNS[@]}"; do
  for name in direct "${NAMES[@]}"; do
    printf '%-8s %-6s %s\n' "$name" "$conns" "${RUNS[$name/$conns/keepalive]# }"
  done
done
echo
echo "p99 ms of each pass (keep-alive); passes where the edge's p99 is the lowest"
for conns in "${CONNS[@]}"; do
  for name in "${NAMES[@]}"; do
    printf '%-8s %-6s %s\n' "$name" "$conns" "${P99_RUNS[$name/$conns/keepalive]# }"
  done
  lowest=0
  for pass in $(seq "$PASSES"); do
    best=$(for name in nginx haproxy caddy; do pass_p99 "$name" "$conns" "$pass"; done | sort -g | head -1)
    awk -v e="$(pass_p99 edge "$conns" "$pass")" -v b="$best" 'BEGIN { exit !(e <= b) }' && lowest=$((lowest + 1))
  done
  echo "edge lowest at $conns connections: $lowest of $PASSES passes"
done
echo
printf '%-8s %16s %22s %14s\n' proxy 'peak RSS MiB' "RSS with $IDLE idle MiB" 'idle open'
for name in "${NAMES[@]}"; do
  printf '%-8s %16s %22s %14s\n' "$name" "$(mib "${PEAK[$name]}")" \
    "$(mib "${IDLE_RSS[$name]}") (+$(mib "$(growth "$name")"))" "${OPEN[$name]:-0}"
done
if [ "$MODE" = all ]; then
  echo "(edge = the whole easydeploy server process: API, engine and proxy; nginx = master + workers)"
else
  echo "(edge = the proxy alone, bench edge; nginx = master + workers)"
fi
# The issue's targets, judged on this run's medians (keep-alive).
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 >= b + 0) }'; }
verdict() { if "$@"; then echo met; else echo missed; fi; }
echo
echo "targets (keep-alive medians of this run)"
for conns in "${CONNS[@]}"; do
  over_nginx=$(ratio "${RPS[edge/$conns/keepalive]}" "${RPS[nginx/$conns/keepalive]}")
  over_haproxy=$(ratio "${RPS[edge/$conns/keepalive]}" "${RPS[haproxy/$conns/keepalive]}")
  edge_p99=${P99[edge/$conns/keepalive]} best=$(best_p99 "$conns" keepalive)
  printf '%-6s ≥ 1.2× nginx: %s (%s)  ≥ 1.1× HAProxy: %s (%s)  p99 ≤ best peer: %s (%s / %s ms)\n' "$conns" \
    "$(verdict at_least "$over_nginx" 1.2)" "$over_nginx" "$(verdict at_least "$over_haproxy" 1.1)" "$over_haproxy" \
    "$(verdict at_least "$best" "$edge_p99")" "$edge_p99" "$best"
done
echo "RSS growth with $IDLE idle clients ≤ nginx's: $(verdict at_least "$(growth nginx)" "$(growth edge)") (+$(mib "$(growth edge)") / +$(mib "$(growth nginx)") MiB)"

metrics_cost
if [ "$MODE" = all ]; then
  # Dialing the replica inside its network namespace vs across the bridge
  # (bridge ÷ namespace below 1: what the namespace path saves).
  SANDBOX=$(docker inspect -f '{{.NetworkSettings.SandboxKey}}' "$CONTAINER")
  compare_edges "Edge dialing the replica" namespace "on $SANDBOX" bridge on
  # Wake-up coalescing on vs off, sends not batched (where it applies;
  # each ÷ coalesce below 1: what letting work gather under load saves;
  # compare the p99 columns too).
  compare_edges "Edge wake-up coalescing (sends not batched)" coalesce "on nobatch $SANDBOX" each "on nocoalesce nobatch $SANDBOX"
  # Batched sends on (the default) vs off (each ÷ batch below 1: what
  # sending a round's small writes together through io_uring saves).
  compare_edges "Edge batched sends" batch "on $SANDBOX" each "on nobatch $SANDBOX"
  # Workers pinned to their CPUs, connections steered to the worker of the
  # CPU their packets arrive on (the default) vs workers free to run on any
  # CPU (free ÷ pinned below 1: what keeping a connection on one CPU saves).
  compare_edges "Edge CPU locality" pinned "on $SANDBOX" free "on free $SANDBOX"
fi
