#!/usr/bin/env bash
# Quickstart: from a fresh checkout to the example app answering through the
# edge proxy, in one command.
#
#   sudo scripts/quickstart.sh
#
# 1. prepares the machine (scripts/setup.sh: packages, dockerd, base images),
# 2. builds the `easydeploy` binary (cargo build -p easydeploy),
# 3. starts `easydeploy server` in the background with the data dir ./.easydeploy
#    (log: ./.easydeploy/server.log), or reuses the server already answering on
#    the API address when it accepts this data dir's admin token,
# 4. deploys the bundled example (examples/hello-flask, as committed in this
#    git checkout) as the app `hello`, prints its URL and fetches it through the
#    proxy, then says how to stop the server and where the admin token is.
#
# Settings: EASYDEPLOY_DATA_DIR (default ./.easydeploy), EASYDEPLOY_API_ADDR
# (127.0.0.1:8080), EASYDEPLOY_PROXY_ADDR (127.0.0.1:8000) and the other
# EASYDEPLOY_* variables of `easydeploy server`. Running it again redeploys.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
EXAMPLE=examples/hello-flask
APP=hello

say() { printf '\n==> %s\n' "$*"; }
die() {
  printf '\nquickstart: error: %s\n' "$*" >&2
  exit 1
}

# The server deploys from git: the example must be committed in this checkout.
if ! git -C "$REPO_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
  [ "$(git -C "$REPO_ROOT" rev-parse --show-toplevel 2>/dev/null)" != "$REPO_ROOT" ]; then
  die "$REPO_ROOT is not a git checkout: Easy Deploy deploys git repositories. Clone the repository with git (not a source archive) and run this again."
fi
if ! git -C "$REPO_ROOT" rev-parse --verify --quiet HEAD >/dev/null ||
  ! git -C "$REPO_ROOT" ls-files --error-unmatch "$EXAMPLE/app.py" >/dev/null 2>&1; then
  die "$EXAMPLE is not committed in this checkout; commit it (git add $EXAMPLE && git commit) and run this again."
fi

say "preparing the machine (scripts/setup.sh)"
"$REPO_ROOT/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$REPO_ROOT/scripts/env.sh"
docker info >/dev/null 2>&1 ||
  die "this user cannot use the Docker engine: run it as root (sudo scripts/quickstart.sh)"

say "building easydeploy (cargo build -p easydeploy; a few minutes the first time)"
cargo build -p easydeploy
target_dir=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
BIN="$target_dir/debug/easydeploy"
[ -x "$BIN" ] || die "the build did not produce $BIN"

export EASYDEPLOY_DATA_DIR="${EASYDEPLOY_DATA_DIR:-$REPO_ROOT/.easydeploy}"
export EASYDEPLOY_API_ADDR="${EASYDEPLOY_API_ADDR:-127.0.0.1:8080}"
export EASYDEPLOY_PROXY_ADDR="${EASYDEPLOY_PROXY_ADDR:-127.0.0.1:8000}"
mkdir -p "$EASYDEPLOY_DATA_DIR"
DATA_DIR=$(cd "$EASYDEPLOY_DATA_DIR" && pwd)
export EASYDEPLOY_DATA_DIR="$DATA_DIR"
TOKEN_FILE="$DATA_DIR/admin.token"
LOG="$DATA_DIR/server.log"
PID_FILE="$DATA_DIR/server.pid"

# host:port -> an address to connect to (a wildcard listener is reached on loopback).
connect_host() {
  local host=${1%:*}
  case "$host" in
    0.0.0.0 | "") echo 127.0.0.1 ;;
    "[::]") echo "[::1]" ;;
    *) echo "$host" ;;
  esac
}
API_URL="http://$(connect_host "$EASYDEPLOY_API_ADDR"):${EASYDEPLOY_API_ADDR##*:}"
export EASYDEPLOY_URL="${EASYDEPLOY_URL:-$API_URL}"

healthy() { curl -fsS --max-time 2 "$API_URL/healthz" >/dev/null 2>&1; }
accepts_token() {
  [ -s "$TOKEN_FILE" ] || return 1
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    -H "Authorization: Bearer $(tr -d '[:space:]' <"$TOKEN_FILE")" "$API_URL/api/v1/apps" || true)
  [ "$code" = 200 ]
}

server_pid=""
if healthy; then
  accepts_token || die "a server already answers on $API_URL but it does not accept the token in $TOKEN_FILE (it uses another data dir).
Stop that server, or use other addresses:
  EASYDEPLOY_API_ADDR=127.0.0.1:8081 EASYDEPLOY_PROXY_ADDR=127.0.0.1:8001 $0"
  if [ -s "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    server_pid=$(cat "$PID_FILE")
  fi
  say "reusing the Easy Deploy server already running on $API_URL${server_pid:+ (pid $server_pid)}"
else
  say "starting easydeploy server (API $API_URL, apps on $EASYDEPLOY_PROXY_ADDR, data $DATA_DIR, log $LOG)"
  printf '\n--- %s: easydeploy server starting\n' "$(date -Is)" >>"$LOG"
  # setsid + nohup: the server outlives this script and the terminal.
  nohup setsid "$BIN" server >>"$LOG" 2>&1 </dev/null &
  server_pid=$!
  echo "$server_pid" >"$PID_FILE"
  for _ in $(seq 120); do
    healthy && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
      tail -n 20 "$LOG" >&2
      die "the server stopped while starting (log: $LOG)"
    fi
    sleep 0.5
  done
  healthy || {
    tail -n 20 "$LOG" >&2
    die "the server did not answer $API_URL/healthz within 60 s (log: $LOG; stop it with: kill $server_pid)"
  }
fi

say "deploying $EXAMPLE as the app '$APP'"
if [ -n "$(git status --porcelain -- "$EXAMPLE" 2>/dev/null)" ]; then
  echo "note: $EXAMPLE has uncommitted changes; the committed version is deployed"
fi
deploy_args=(deploy "$REPO_ROOT" --name "$APP" --root "$EXAMPLE")
branch=$(git symbolic-ref --quiet --short HEAD || true)
[ -n "$branch" ] && deploy_args+=(--branch "$branch")
url=$("$BIN" "${deploy_args[@]}" | tail -n 1) || die "the deployment failed (details: $BIN logs $APP --build; server log: $LOG)"
[[ "$url" =~ ^https?://([^/:]+)(:([0-9]+))? ]] || die "the deploy did not print a URL (got '$url')"
app_host=${BASH_REMATCH[1]}
app_port=${BASH_REMATCH[3]:-80}
proxy_ip=$(connect_host "$EASYDEPLOY_PROXY_ADDR")
proxy_ip=${proxy_ip#[}
proxy_ip=${proxy_ip%]}

say "the app is live at $url"
echo "\$ curl -s --resolve $app_host:$app_port:$proxy_ip $url"
response=""
for _ in 1 2 3 4 5; do
  response=$(curl -sS --max-time 10 --resolve "$app_host:$app_port:$proxy_ip" "$url") && break
  response=""
  sleep 1
done
[ -n "$response" ] || die "the app did not answer at $url (see: $BIN status $APP; $BIN logs $APP)"
printf '%s\n' "$response"

cli="$BIN"
[ "$EASYDEPLOY_URL" = http://127.0.0.1:8080 ] || cli="EASYDEPLOY_URL=$EASYDEPLOY_URL $cli"
[ "$DATA_DIR" = "$REPO_ROOT/.easydeploy" ] || cli="EASYDEPLOY_DATA_DIR=$DATA_DIR $cli"
cat <<EOF

Easy Deploy is running.
  app          $url   (deployed from $EXAMPLE; browsers resolve *.localhost to 127.0.0.1)
  API          $API_URL
  admin token  $TOKEN_FILE   (Authorization: Bearer <token>; the CLI reads it from there)
  server log   $LOG
  CLI          (from $REPO_ROOT)  $cli status $APP   (also: logs $APP, apps)
EOF
if [ -n "$server_pid" ]; then
  echo "  stop         kill $server_pid   (the server; the app's containers keep running)"
else
  echo "  stop         the server was already running before this script; stop it where it was started"
fi
echo "  remove app   $cli destroy $APP"
