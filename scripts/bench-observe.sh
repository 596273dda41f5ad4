#!/usr/bin/env bash
# Log streaming benchmark: how long a line an app writes takes to reach a
# follower of the app's log stream (GET /api/v1/apps/APP/logs/stream,
# Server-Sent Events), against the goal: under 500 ms.
#
# It deploys a small Python app (own Dockerfile FROM the local Python base
# image) as the app `obsbench`: an HTTP server for the health check, and a
# thread printing `tick N T` every BENCH_INTERVAL_MS ms (default 20), where T
# is the wall-clock time of the write (time.time(), the host's clock: same
# kernel). A follower on this machine reads the stream over a raw socket
# (tail=0, follow) and takes, for each of BENCH_LINES lines (default 500),
# the time it received the line minus T. Lines written before the follower
# connected are not counted. It prints min, median, p95, p99 and max.
#
#   sudo scripts/bench-observe.sh
#
# It starts its own server (free ports, a temporary data dir), creates the
# app's git repository in a temporary dir, and at the end destroys the app,
# stops the server and removes the temporary dirs.
#
# Settings: BENCH_PROFILE=debug|release (binary to measure; default debug),
# BENCH_LINES (default 500), BENCH_INTERVAL_MS (default 20), BENCH_APP
# (default obsbench), BENCH_JSON=FILE (also write the figures as JSON).
# Needs the Python base image (scripts/build-base-images.sh, run by
# scripts/setup.sh), git, curl and python3 (standard library only).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
# shellcheck source=scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"
APP=${BENCH_APP:-obsbench}
PROFILE=${BENCH_PROFILE:-debug}
LINES=${BENCH_LINES:-500}
INTERVAL_MS=${BENCH_INTERVAL_MS:-20}

[[ "$LINES" =~ ^[1-9][0-9]*$ ]] || die "BENCH_LINES must be a positive number (got '$LINES')"
[[ "$INTERVAL_MS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_INTERVAL_MS must be a positive number (got '$INTERVAL_MS')"
for tool in python3 git curl docker; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (sudo scripts/setup.sh)"
done
# shellcheck source=scripts/env.sh
source "$REPO_ROOT/scripts/env.sh"
docker info >/dev/null 2>&1 || die "this user cannot use the Docker engine: run it as root (or sudo scripts/setup.sh)"
BASE=${EASYDEPLOY_BASE_IMAGE_PYTHON:-easydeploy/python:bookworm}
docker image inspect "$BASE" >/dev/null 2>&1 ||
  die "the Python base image $BASE is missing: run scripts/build-base-images.sh"

bench_build "$PROFILE"

work=$(mktemp -d "${TMPDIR:-/tmp}/easydeploy-bench-observe.XXXXXX")
server_pid=""
trap 'bench_cleanup "$APP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the app -------------------------------------------------------------------
SRC="$work/app"
mkdir -p "$SRC"
cat >"$SRC/Dockerfile" <<EOF
FROM $BASE
COPY app.py /app.py
ENV TICK_MS=$INTERVAL_MS
EXPOSE 8080
CMD ["python3", "-u", "/app.py"]
EOF
cat >"$SRC/app.py" <<'PY'
import http.server
import os
import sys
import threading
import time


def tick():
    interval = int(os.environ.get("TICK_MS", "20")) / 1000
    n = 0
    while True:
        n += 1
        # The time is taken right before the write; -u: unbuffered stdout.
        sys.stdout.write(f"tick {n} {time.time():.6f}\n")
        time.sleep(interval)


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


threading.Thread(target=tick, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Ok).serve_forever()
PY
git -C "$SRC" init -q -b main
git -C "$SRC" add -A
git -C "$SRC" -c user.name=bench -c user.email=bench@example.com commit -qm "log ticker"

export EASYDEPLOY_METRICS_INTERVAL=2
bench_start_server "$work"

say "deploying $APP (a line every $INTERVAL_MS ms)"
"$BIN" deploy "$SRC" --name "$APP" >"$work/deploy.log" 2>&1 || {
  tail -n 20 "$work/deploy.log" >&2
  die "the deployment failed"
}

say "following GET /api/v1/apps/$APP/logs/stream for $LINES lines"
python3 - "$APP" "$LINES" "${BENCH_JSON:-}" "$INTERVAL_MS" "$PROFILE" "$(git rev-parse --short HEAD)" <<'PY'
import json
import os
import socket
import statistics
import sys
import time
from urllib.parse import urlparse

app, lines, json_out, interval_ms, profile, commit = sys.argv[1:7]
lines = int(lines)
api = urlparse(os.environ["EASYDEPLOY_URL"])
token = open(os.path.join(os.environ["EASYDEPLOY_DATA_DIR"], "admin.token")).read().strip()

sock = socket.create_connection((api.hostname, api.port), timeout=30)
sock.sendall(
    (
        f"GET /api/v1/apps/{app}/logs/stream?tail=0&follow=true HTTP/1.0\r\n"
        f"Host: {api.hostname}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
)
connected = time.time()
buffer = b""
headers_done = False
delays = []
deadline = time.monotonic() + 60 + lines * int(interval_ms) / 1000 * 3
while len(delays) < lines:
    if time.monotonic() > deadline:
        sys.exit(f"only {len(delays)} of {lines} lines arrived in time")
    chunk = sock.recv(65536)
    received = time.time()
    if not chunk:
        sys.exit(f"the stream ended after {len(delays)} lines")
    buffer += chunk
    if not headers_done:
        if b"\r\n\r\n" not in buffer:
            continue
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0].decode()
        if " 200 " not in status + " ":
            sys.exit(f"the stream answered {status}")
        headers_done = True
    *complete, buffer = buffer.split(b"\n")
    for raw in complete:
        if not raw.startswith(b"data:"):
            continue
        try:
            line = json.loads(raw[5:].strip())["line"]
        except (ValueError, KeyError):
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] != "tick":
            continue
        written = float(parts[2])
        if written < connected:
            continue  # written before the follower was there
        delays.append((received - written) * 1000)
sock.close()

delays.sort()
def pct(q):
    return delays[min(len(delays) - 1, max(0, int(round(q * len(delays))) - 1))]

figures = {
    "lines": len(delays),
    "interval_ms": int(interval_ms),
    "min_ms": delays[0],
    "median_ms": statistics.median(delays),
    "p95_ms": pct(0.95),
    "p99_ms": pct(0.99),
    "max_ms": delays[-1],
}
print()
print("==> results")
print(f"commit {commit}, {profile} build, {os.cpu_count()} cores")
print(f"log line -> SSE follower delay over {figures['lines']} lines (one every {interval_ms} ms)")
for key in ["min_ms", "median_ms", "p95_ms", "p99_ms", "max_ms"]:
    print(f"  {key[:-3]:<7} {figures[key]:8.1f} ms")
met = figures["p95_ms"] < 500 and figures["max_ms"] < 500
print(f"goal: a line reaches a follower in under 500 ms: {'MET' if met else 'NOT MET'}"
      f" (p95 {figures['p95_ms']:.1f} ms, max {figures['max_ms']:.1f} ms)")
if json_out:
    with open(json_out, "w") as f:
        json.dump(figures, f, indent=2)
    print(f"figures written to {json_out}")
PY

say "50 requests through the proxy, then the metrics of $APP (easydeploy metrics $APP --window 5m --step 10s)"
for _ in $(seq 50); do
  curl -fsS --max-time 5 -H "Host: $APP.localhost" "http://127.0.0.1:$PROXY_PORT/" >/dev/null ||
    die "the app did not answer through the proxy"
done
sleep 5 # two samples (EASYDEPLOY_METRICS_INTERVAL=2)
"$BIN" metrics "$APP" --window 5m --step 10s || echo "warning: easydeploy metrics failed" >&2
