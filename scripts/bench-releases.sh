#!/usr/bin/env bash
# Release benchmark (issue 4, "Measure"): what users feel while an app changes.
# It deploys a tiny FROM-scratch busybox httpd app as the app `relbench` and
# measures, against the goals:
#
#   1. failed requests during a rolling deploy under load            goal: 0
#      wrk (-t2 -c16) runs through the edge proxy from 1 s before a new
#      commit is deployed (2 replicas) until 1 s after the old replicas are
#      gone (drained, stopped, removed); failed = non-2xx responses + socket
#      errors (connect, read, write, timeout) + 2xx answers with a body that
#      is neither the old nor the new version.
#   2. time from a load step to an extra replica serving             goal: < 10 s
#      autoscale --min 1 --max 3 --target-rps R (default 200, far below
#      what wrk sends); from starting wrk until a second replica is running
#      and healthy in GET /api/v1/apps/APP (polled every 100 ms). Also shown:
#      time to the maximum of 3, and time to scale back in to 1 replica
#      after the load stops (EASYDEPLOY_SCALE_IN_DELAY=5, one step at a time).
#   3. time for a rollback to serve the earlier release              goal: < 2 s
#      from starting `easydeploy rollback APP` until the proxy answers with
#      the earlier release's content (its commit's www/index.html).
#
# Each is run BENCH_RUNS times (default 3); the table gives min, median and
# max, and a goal is met when every run meets it (the exit status is 0 either
# way; non-zero means the benchmark itself failed).
#
# Two things shape the figures besides the platform:
# - busybox httpd runs as PID 1 and ignores SIGTERM, so every replica that is
#   removed takes the full 10 s stop timeout: old replicas are gone ~10 s
#   after a release is live, and scale-in takes two steps of (5 s delay +
#   10 s stop) plus the 5 s rate window.
# - each run waits until the previous release's old replicas are gone before
#   the next deploy or rollback. Deploying again sooner can fail at
#   `releasing` with "No such image": the previous deployment, which prunes
#   old images after stopping its old replicas, removes the image the new
#   deployment has just built.
#
#   sudo scripts/bench-releases.sh
#
# It starts its own server (free ports, a temporary data dir, with
# EASYDEPLOY_SCALE_IN_DELAY=5 and EASYDEPLOY_RECONCILE_INTERVAL=1), creates
# the app's git repository in a temporary dir (Dockerfile, a copy of
# /bin/busybox from Debian's busybox-static, www/index.html) and commits a new
# version for every deploy. At the end it destroys the app, stops the server
# and removes the temporary dirs.
#
# Settings: BENCH_PROFILE=debug|release (binary to measure; default debug),
# BENCH_RUNS (default 3), BENCH_TARGET_RPS (autoscaling target per replica;
# default 200), BENCH_APP (default relbench), BENCH_JSON=FILE (also write
# the figures as JSON). Needs wrk (installed with apt-get when missing and
# run as root), busybox-static, git, curl and python3 (standard library).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
APP=${BENCH_APP:-relbench}
PROFILE=${BENCH_PROFILE:-debug}
RUNS=${BENCH_RUNS:-3}
TARGET_RPS=${BENCH_TARGET_RPS:-200}
REPLICAS=2     # replicas during the rolling deploys and rollbacks
MAX_REPLICAS=3 # autoscaling bounds: 1..MAX_REPLICAS
# shellcheck source=scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"

bench_check_profile "$PROFILE"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number (got '$RUNS')"
[[ "$TARGET_RPS" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BENCH_TARGET_RPS must be a number (got '$TARGET_RPS')"
for tool in python3 git curl docker; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (sudo scripts/setup.sh)"
done
# The image is FROM scratch: its busybox must be the static one, with httpd.
if ! { [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -x httpd >/dev/null; }; then
  die "/bin/busybox with httpd is needed (apt-get install -y busybox-static)"
fi
if ldd /bin/busybox >/dev/null 2>&1; then
  die "/bin/busybox is dynamically linked: a FROM-scratch image needs busybox-static (apt-get install -y busybox-static)"
fi
if ! command -v wrk >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die "wrk is needed: sudo apt-get install -y wrk"
  say "installing wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null; } ||
    die "could not install wrk"
fi
# shellcheck source=scripts/env.sh
source "$REPO_ROOT/scripts/env.sh"
docker info >/dev/null 2>&1 || die "this user cannot use the Docker engine: run it as root (or sudo scripts/setup.sh)"

bench_build "$PROFILE"

work=$(mktemp -d "${TMPDIR:-/tmp}/easydeploy-bench-releases.XXXXXX")
bench_server_env "$work"
proxy_port=$PROXY_PORT
export EASYDEPLOY_SCALE_IN_DELAY=5
export EASYDEPLOY_RECONCILE_INTERVAL=1
CLI_LOG="$work/cli.log"
SRC="$work/app"
RESULTS="$work/results.jsonl"
PROXY_URL="http://127.0.0.1:$proxy_port/"
HOST_HEADER="Host: $APP.localhost"

server_pid=""
wrk_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$wrk_pid" ] && kill -0 "$wrk_pid" 2>/dev/null; then
    kill "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
  fi
  bench_stop_server "$APP"
  if [ "$rc" -ne 0 ] && [ -s "$CLI_LOG" ]; then
    echo "last client output:" >&2
    tail -n 15 "$CLI_LOG" >&2
  fi
  bench_keep_log "$rc" easydeploy-bench-releases-server.log
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -------------------------------------------------------------------
# Python side: API polling with timestamps, wrk output parsing, the report.
cat >"$work/bench.py" <<'PY'
import http.client
import json
import os
import re
import statistics
import sys
import time
import urllib.request

API = os.environ["EASYDEPLOY_URL"]
APP = os.environ["BENCH_APP_NAME"]
PROXY_PORT = int(os.environ["BENCH_PROXY_PORT"])
TOKEN = open(os.path.join(os.environ["EASYDEPLOY_DATA_DIR"], "admin.token")).read().strip()


def get(path):
    request = urllib.request.Request(API + "/api/v1" + path, headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def replicas():
    """(serving, total, wanted): replicas running and healthy, all replicas, the app's setting."""
    app = get(f"/apps/{APP}")
    status = app.get("replica_status") or []
    serving = sum(1 for r in status if r.get("state") == "running" and r.get("healthy"))
    return serving, len(status), app.get("replicas")


def fetch():
    conn = http.client.HTTPConnection("127.0.0.1", PROXY_PORT, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": f"{APP}.localhost"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    finally:
        conn.close()


def scale_out(t0, timeout, most, after_second):
    """Polls every 100 ms; prints the seconds from t0 to 2 serving replicas and to `most`
    (or '-' when `most` is not reached within `after_second` s of the second)."""
    second = full = None
    while True:
        try:
            serving, _, _ = replicas()
        except OSError:
            serving = 0
        elapsed = time.time() - t0
        if second is None and serving >= 2:
            second = elapsed
        if serving >= most:
            full = elapsed
            break
        if second is not None and elapsed - second > after_second:
            break
        if elapsed > timeout:
            break
        time.sleep(0.1)
    if second is None:
        sys.exit(f"no second replica served within {timeout} s")
    print(f"{second:.3f} " + ("-" if full is None else f"{full:.3f}"))


def poll(t0, timeout, interval, check):
    """Calls check() every `interval` s until it returns (True, _); prints the seconds from t0.
    Exits with the message it returned last once `timeout` s have passed."""
    while True:
        done, failure = check()
        elapsed = time.time() - t0
        if done:
            print(f"{elapsed:.3f}")
            return
        if elapsed > timeout:
            sys.exit(failure)
        time.sleep(interval)


def scale_in(t0, timeout, count):
    """Polls every 100 ms until exactly `count` replicas exist, all serving; prints the seconds from t0."""
    def check():
        try:
            serving, total, wanted = replicas()
        except OSError:
            serving = total = wanted = -1
        return (wanted == count and total == count and serving == count,
                f"not back to {count} replica(s) within {timeout} s (serving {serving}, total {total}, wanted {wanted})")
    poll(t0, timeout, 0.1, check)


def rollout(t0, timeout, count):
    """Polls every 100 ms until only the live deployment's `count` replicas exist (the old
    ones drained and removed), all serving; prints the seconds from t0."""
    def check():
        try:
            app = get(f"/apps/{APP}")
            status = app.get("replica_status") or []
            done = (len(status) == count
                    and all(r.get("deployment") == app.get("live_deployment") for r in status)
                    and all(r.get("state") == "running" and r.get("healthy") for r in status))
        except OSError:
            done = False
        return done, f"the old replicas were not gone within {timeout} s"
    poll(t0, timeout, 0.1, check)


def wait_body(expected, t0, timeout):
    """Polls the proxy every 20 ms until it answers 200 with `expected`; prints the seconds from t0."""
    def check():
        try:
            last = fetch()
        except OSError as e:
            last = (None, str(e))
        return last == (200, expected), f"the proxy did not answer {expected!r} within {timeout} s (last: {last})"
    poll(t0, timeout, 0.02, check)


def rollback_target():
    """The release `easydeploy rollback APP` picks: the newest one numbered below the live one."""
    live = get(f"/apps/{APP}")["live"]
    earlier = [r for r in get(f"/apps/{APP}/releases")
               if r.get("release") is not None and r["release"] < live["release"]]
    if not earlier:
        sys.exit("no earlier release to roll back to")
    target = max(earlier, key=lambda r: r["release"])
    print(target["release"], target["commit"])


def latest_steps():
    """Seconds the latest deployment spent from queued to live, and in releasing (starting
    containers) and verifying (health checks), from its recorded transitions."""
    from datetime import datetime
    latest = get(f"/apps/{APP}/deployments?limit=1")[0]
    transitions = get(f"/deployments/{latest['id']}")["transitions"]
    at = lambda t: datetime.fromisoformat(t["at"].replace("Z", "+00:00")).timestamp()
    transitions.sort(key=at)
    steps = {}
    for this, nxt in zip(transitions, transitions[1:]):
        steps[this["state"]] = steps.get(this["state"], 0.0) + at(nxt) - at(this)
    live = [at(t) for t in transitions if t["state"] == "live"]
    total = live[0] - at(transitions[0]) if live else None
    print(json.dumps({"to_live": total, "releasing": steps.get("releasing"), "verifying": steps.get("verifying")}))


def parse_wrk(path):
    text = open(path).read()
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if not done:
        sys.exit(f"wrk printed no summary:\n{text}")
    result = {"requests": int(done.group(1)), "non2xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0,
              "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        result["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        result.update(zip(["connect", "read", "write", "timeout"], map(int, m.groups())))
    m = re.search(r"bodies: old=(\d+) new=(\d+) unexpected=(\d+)", text)
    if m:
        result.update(zip(["old", "new", "unexpected"], map(int, m.groups())))
    result["socket_errors"] = sum(result[k] for k in ["connect", "read", "write", "timeout"])
    result["failed"] = result["non2xx"] + result["socket_errors"] + result.get("unexpected", 0)
    return result


def record(kind, run, **fields):
    with open(os.environ["BENCH_RESULTS"], "a") as f:
        f.write(json.dumps({"kind": kind, "run": run, **fields}) + "\n")


def report(json_out):
    rows = [json.loads(line) for line in open(os.environ["BENCH_RESULTS"])]
    by = lambda kind: [r for r in rows if r["kind"] == kind]
    fmt_s = lambda v: "-" if v is None else f"{v:.2f} s"
    fmt_n = lambda v: "-" if v is None else f"{v:g}"

    roll = by("rolling")
    if roll:
        print("1. rolling deploy under load (wrk -t2 -c16 through the proxy, "
              f"{os.environ['BENCH_REPLICAS']} replicas)")
        print(f"   {'run':<4}{'requests':>10}{'req/s':>9}{'non-2xx':>9}{'socket err':>12}{'bad body':>10}"
              f"{'old/new bodies':>17}{'live':>9}{'old gone':>10}")
        for r in roll:
            w = r["wrk"]
            print(f"   {r['run']:<4}{w['requests']:>10}{w['rps']:>9.0f}{w['non2xx']:>9}{w['socket_errors']:>12}"
                  f"{w.get('unexpected', 0):>10}{str(w.get('old', '-')) + '/' + str(w.get('new', '-')):>17}"
                  f"{r['deploy_s']:>7.2f} s{r['rollout_s']:>8.2f} s")
        print("   (live: the deploy command returned; old gone: only the new release's replicas remain;"
              " both from the deploy's start; the load runs until 1 s after 'old gone')")
    scale = by("autoscale")
    if scale:
        print(f"\n2. autoscaling step load (target {os.environ['BENCH_TARGET_RPS']} req/s per replica, "
              f"1..{os.environ['BENCH_MAX_REPLICAS']} replicas)")
        print(f"   {'run':<4}{'req/s':>9}{'failed':>8}{'2nd replica':>13}{'max replicas':>14}{'back to 1':>11}")
        for r in scale:
            print(f"   {r['run']:<4}{r['wrk']['rps']:>9.0f}{r['wrk']['failed']:>8}{fmt_s(r['second_s']):>13}"
                  f"{fmt_s(r['max_s']):>14}{fmt_s(r['scale_in_s']):>11}")
    back = by("rollback")
    if back:
        print("\n3. rollback to the earlier release")
        print(f"   {'run':<4}{'content':>16}{'command':>10}{'serving':>10}{'old gone':>10}"
              f"{'| queued->live':>15}{'starting':>10}{'health':>10}")
        for r in back:
            st = r["steps"]
            print(f"   {r['run']:<4}{r['from_to']:>16}{r['cli_s']:>8.2f} s{r['served_s']:>8.2f} s"
                  f"{r['rollout_s']:>8.2f} s{fmt_s(st['to_live']):>15}{fmt_s(st['releasing']):>10}"
                  f"{fmt_s(st['verifying']):>10}")
        print("   (command: `easydeploy rollback` returned; serving: the proxy answers the earlier content;"
              " old gone: only the new release's replicas remain;\n    queued->live, starting (releasing)"
              " and health (verifying): the server's recorded transitions of the rollback deployment)")

    summary = [
        ("failed requests, rolling deploy", [r["wrk"]["failed"] for r in roll], lambda v: v == 0, "0", fmt_n),
        ("load step -> 2nd replica serving", [r["second_s"] for r in scale], lambda v: v < 10, "< 10 s", fmt_s),
        ("rollback -> earlier release serving", [r["served_s"] for r in back], lambda v: v < 2, "< 2 s", fmt_s),
        ("load stop -> back to 1 replica", [r["scale_in_s"] for r in scale], None, "(info)", fmt_s),
        ("failed requests, autoscaling", [r["wrk"]["failed"] for r in scale], None, "(info)", fmt_n),
    ]
    print()
    header = f"{'measurement':<38}{'runs':>6}{'min':>10}{'median':>10}{'max':>10}{'goal':>9}   result"
    print(header)
    print("-" * len(header))
    all_met = True
    for name, values, goal, goal_text, fmt in summary:
        values = [v for v in values if v is not None]
        if not values:
            print(f"{name:<38}{0:>6}{'-':>10}{'-':>10}{'-':>10}{goal_text:>9}   {'NOT MEASURED' if goal else ''}")
            all_met = all_met and goal is None
            continue
        result = ""
        if goal:
            met = all(goal(v) for v in values)
            all_met = all_met and met
            result = "met" if met else "MISSED"
        print(f"{name:<38}{len(values):>6}{fmt(min(values)):>10}{fmt(statistics.median(values)):>10}"
              f"{fmt(max(values)):>10}{goal_text:>9}   {result}")
    print("(a goal is met when every run meets it)")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(rows, f, indent=2)
        print(f"figures written to {json_out}")
    return all_met


command, args = sys.argv[1], sys.argv[2:]
if command == "scale-out":
    scale_out(float(args[0]), float(args[1]), int(args[2]), float(args[3]))
elif command == "scale-in":
    scale_in(float(args[0]), float(args[1]), int(args[2]))
elif command == "rollout":
    rollout(float(args[0]), float(args[1]), int(args[2]))
elif command == "wait-body":
    wait_body(args[0], float(args[1]), float(args[2]))
elif command == "latest-steps":
    latest_steps()
elif command == "rollback-target":
    rollback_target()
elif command == "record-rolling":
    record("rolling", int(args[0]), wrk=parse_wrk(args[1]), deploy_s=float(args[2]), rollout_s=float(args[3]))
elif command == "record-autoscale":
    to_f = lambda v: None if v == "-" else float(v)
    record("autoscale", int(args[0]), wrk=parse_wrk(args[1]), second_s=to_f(args[2]), max_s=to_f(args[3]),
           scale_in_s=to_f(args[4]))
elif command == "record-rollback":
    record("rollback", int(args[0]), from_to=args[1], cli_s=float(args[2]), served_s=float(args[3]),
           rollout_s=float(args[4]), steps=json.loads(args[5]))
elif command == "wrk-line":
    w = parse_wrk(args[0])
    print(f"{w['requests']} requests ({w['rps']:.0f}/s): non-2xx {w['non2xx']}, socket errors {w['socket_errors']}"
          f" (connect {w['connect']}, read {w['read']}, write {w['write']}, timeout {w['timeout']})"
          + (f", bodies old {w['old']} new {w['new']} unexpected {w['unexpected']}" if "old" in w else ""))
elif command == "report":
    sys.exit(0 if report(args[0] if args else "") else 3)
else:
    sys.exit(f"unknown command {command}")
PY
export BENCH_APP_NAME="$APP" BENCH_PROXY_PORT="$proxy_port" BENCH_RESULTS="$RESULTS" \
  BENCH_TARGET_RPS="$TARGET_RPS" BENCH_REPLICAS="$REPLICAS" BENCH_MAX_REPLICAS="$MAX_REPLICAS"
py() { python3 "$work/bench.py" "$@"; }

# wrk script: counts 2xx answers carrying the old body, the new body, or anything else.
cat >"$work/bodies.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  old_body, new_body = args[1] or "", args[2] or ""
  n_old, n_new, n_unexpected = 0, 0, 0
end
function response(status, headers, body)
  if status < 200 or status > 299 then return end -- wrk counts these itself
  local b = (body or ""):gsub("%s+$", "")
  if b == old_body then n_old = n_old + 1
  elseif b == new_body then n_new = n_new + 1
  else n_unexpected = n_unexpected + 1 end
end
function done(summary, latency, requests)
  local o, n, x = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("n_old"); n = n + t:get("n_new"); x = x + t:get("n_unexpected")
  end
  io.write(string.format("bodies: old=%d new=%d unexpected=%d\n", o, n, x))
end
LUA

# Starts wrk in the background (until stop_load), counting OLD and NEW bodies.
start_load() {
  local out=$1 old=$2 new=$3
  wrk -t2 -c16 -d600s -s "$work/bodies.lua" -H "$HOST_HEADER" "$PROXY_URL" -- "$old" "$new" >"$out" 2>&1 &
  wrk_pid=$!
}
# Stops wrk with SIGINT, which makes it print its summary.
stop_load() {
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" || true
  wrk_pid=""
}
# Runs the CLI, its output to the client log; prints the last line of stdout.
cli() {
  local out rc=0
  printf '$ easydeploy %s\n' "$*" >>"$CLI_LOG"
  out=$("$BIN" "$@" 2>>"$CLI_LOG") || rc=$?
  printf '%s\n' "$out" >>"$CLI_LOG"
  printf '%s\n' "$out" | tail -n 1
  return "$rc"
}
version_names=(zero one two three four five six seven eight nine ten eleven twelve)
version_text() {
  if [ "$1" -lt ${#version_names[@]} ]; then echo "version ${version_names[$1]}"; else echo "version $1"; fi
}
# Writes www/index.html and commits it.
commit_version() {
  printf '%s' "$1" >"$SRC/www/index.html"
  git -C "$SRC" add -A
  git -C "$SRC" -c user.name="Easy Deploy bench" -c user.email=bench@easydeploy.invalid \
    -c commit.gpgsign=false commit -q -m "$1"
}
content_now() { curl -sS --max-time 5 -H "$HOST_HEADER" "$PROXY_URL"; }

# --- server and app --------------------------------------------------------------
bench_run_server

say "creating the app repository ($SRC)"
mkdir -p "$SRC/www"
git -C "$SRC" init -q
git -C "$SRC" symbolic-ref HEAD refs/heads/main
cp /bin/busybox "$SRC/busybox"
chmod 0755 "$SRC/busybox"
printf 'FROM scratch\nCOPY busybox /busybox\nCOPY www /www\nEXPOSE 8080\nCMD ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n' >"$SRC/Dockerfile"
version=1
commit_version "$(version_text $version)"
git -C "$SRC" log --oneline

say "deploying $APP ($(version_text $version), $REPLICAS replicas)"
url=$(cli deploy "$SRC" --name "$APP" --branch main --replicas "$REPLICAS") || die "the first deployment failed"
echo "  $url"
[ "$(content_now)" = "$(version_text $version)" ] || die "the app does not answer '$(version_text $version)' through the proxy"

# --- 1. rolling deploys under load -------------------------------------------------
for run in $(seq "$RUNS"); do
  old=$(version_text $version)
  new=$(version_text $((version + 1)))
  say "1. rolling deploy under load, run $run/$RUNS: '$old' -> '$new'"
  start_load "$work/wrk-rolling-$run.txt" "$old" "$new"
  sleep 1
  version=$((version + 1))
  commit_version "$new"
  t0=$(now)
  cli deploy "$SRC" --name "$APP" --branch main >/dev/null || die "the deployment of '$new' failed"
  t1=$(now)
  # Keep the load on until the old replicas are drained and removed, and 1 s more.
  rollout_s=$(py rollout "$t0" 90 "$REPLICAS") || { stop_load; die "the rollout of '$new' did not finish"; }
  sleep 1
  stop_load
  deploy_s=$(python3 -c "print($t1 - $t0)")
  echo "  live after $(printf '%.2f' "$deploy_s") s, old replicas gone after $rollout_s s"
  echo "  wrk: $(py wrk-line "$work/wrk-rolling-$run.txt")"
  py record-rolling "$run" "$work/wrk-rolling-$run.txt" "$deploy_s" "$rollout_s"
  [ "$(content_now)" = "$new" ] || die "after the deploy the app does not answer '$new'"
done

# --- 3. rollbacks --------------------------------------------------------------------
for run in $(seq "$RUNS"); do
  read -r target_release target_commit < <(py rollback-target)
  expected=$(git -C "$SRC" show "$target_commit:www/index.html")
  current=$(content_now)
  [ "$current" != "$expected" ] || die "the rollback target already serves '$expected'"
  say "3. rollback, run $run/$RUNS: '$current' -> release v$target_release '$expected'"
  t0=$(now)
  cli rollback "$APP" >/dev/null || die "the rollback failed"
  t1=$(now)
  served_s=$(py wait-body "$expected" "$t0" 30) || die "the rollback did not serve '$expected'"
  cli_s=$(python3 -c "print($t1 - $t0)")
  rollout_s=$(py rollout "$t0" 90 "$REPLICAS") || die "the old replicas were not removed after the rollback"
  steps=$(py latest-steps)
  echo "  command returned after $(printf '%.2f' "$cli_s") s; '$expected' served after $served_s s;" \
    "old replicas gone after $rollout_s s"
  echo "  server steps: $steps"
  py record-rollback "$run" "${current#version }->${expected#version }" "$cli_s" "$served_s" "$rollout_s" "$steps"
  sleep 1
done

# --- 2. autoscaling on a load step -----------------------------------------------------
say "2. autoscaling: scaling $APP to 1 replica, then autoscale 1..$MAX_REPLICAS at $TARGET_RPS req/s per replica"
cli scale "$APP" --replicas 1 >/dev/null || die "scaling to 1 replica failed"
py scale-in "$(now)" 60 1 >/dev/null || die "the app did not scale in to 1 replica"
cli autoscale "$APP" --min 1 --max "$MAX_REPLICAS" --target-rps "$TARGET_RPS" >/dev/null || die "enabling autoscaling failed"
sleep 3 # the autoscaler has seen the idle app
body=$(content_now)
for run in $(seq "$RUNS"); do
  say "2. load step, run $run/$RUNS"
  t0=$(now)
  start_load "$work/wrk-autoscale-$run.txt" "$body" "$body"
  read -r second_s max_s < <(py scale-out "$t0" 60 "$MAX_REPLICAS" 10) || {
    stop_load
    die "no second replica served within 60 s of the load step"
  }
  sleep 2 # a little more load on the scaled-out app
  stop_load
  t_stop=$(now)
  echo "  2nd replica serving after $second_s s, $MAX_REPLICAS after $max_s s; wrk: $(py wrk-line "$work/wrk-autoscale-$run.txt")"
  scale_in_s=$(py scale-in "$t_stop" 120 1) || die "the app did not scale back in to 1 replica"
  echo "  back to 1 replica $scale_in_s s after the load stopped"
  py record-autoscale "$run" "$work/wrk-autoscale-$run.txt" "$second_s" "$max_s" "$scale_in_s"
  [ "$run" -eq "$RUNS" ] || sleep 2
done

say "results"
echo "$PROFILE build, $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), wrk -t2 -c16, reconcile every 1 s, scale-in delay 5 s"
status=0
py report "${BENCH_JSON:-}" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || die "the report failed"
