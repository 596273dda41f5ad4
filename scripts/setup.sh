#!/usr/bin/env bash
# Prepares this machine (Debian 12 / Ubuntu) to build, test and run Easy Deploy.
# Idempotent and non-interactive: run it as often as you like.
#
#   sudo scripts/setup.sh
#
# 1. Installs what is missing of: docker.io (only when there is no dockerd at
#    all), mmdebstrap, busybox-static (tests copy /bin/busybox into FROM-scratch
#    images), git, pkg-config, libssl-dev, curl, ca-certificates, and
#    debian-archive-keyring when absent (mmdebstrap on a non-Debian host).
# 2. Checks for the Rust toolchain (cargo); when missing, says how to install
#    it with rustup and stops.
# 3. Starts the Docker engine when `docker info` fails (systemd when it runs,
#    else `dockerd` in the background, logging to /var/log/easydeploy-dockerd.log)
#    and waits up to 60 s for it.
# 4. Builds the base images (scripts/build-base-images.sh; skips existing ones).
# 5. Lets root use this checkout with git when another user owns it
#    (git's safe.directory), so deploying the repository itself works under sudo.
# 6. Installs moto (the AWS stand-in the AWS tests start) in a venv at
#    /opt/easydeploy-moto (`pip install 'moto[server]'`), unless present.
# 7. Installs schemathesis (the API fuzzer of the tests) in a venv at
#    /opt/easydeploy-schemathesis, unless present.
#
# Runs as root; as another user it uses sudo for the steps that need root.
# Exits non-zero with a message naming what failed.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERD_LOG=/var/log/easydeploy-dockerd.log
# dockerd, pidof and friends live in sbin, which a user's PATH may lack.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

say() { printf '[setup] %s\n' "$*"; }
die() {
  printf '[setup] error: %s\n' "$*" >&2
  exit 1
}

if [ "$(id -u)" -eq 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
  if [ -t 0 ]; then
    as_root() { sudo "$@"; }
  else
    as_root() { sudo -n "$@"; }
  fi
  say "not root: using sudo for the steps that need root"
else
  die "run this as root (sudo is not installed): su -c '$0'"
fi

# --- 1. packages ---------------------------------------------------------------
packages=(mmdebstrap busybox-static git pkg-config libssl-dev curl ca-certificates)
missing=()
if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  # Any Docker engine will do (docker-ce, moby): docker.io would conflict with them.
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed'; then
      missing+=("$package")
    fi
  done
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
      die "apt-get update failed (is a Debian mirror reachable?)"
    as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
      die "apt-get install ${missing[*]} failed"
  else
    say "packages: all present"
  fi
else
  # Not a Debian-like system: check the commands and say what is missing.
  for cmd in dockerd mmdebstrap busybox git pkg-config curl; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [ ${#missing[@]} -eq 0 ] ||
    die "no apt-get here; install these yourself, then run this again: ${missing[*]} (and OpenSSL headers, CA certificates)"
fi
[ -x /bin/busybox ] || die "/bin/busybox is missing (install busybox-static)"

# --- 2. Rust toolchain ---------------------------------------------------------
# shellcheck source=scripts/env.sh
source "$REPO_ROOT/scripts/env.sh"
if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<'EOF'
[setup] error: the Rust toolchain (cargo) is missing. Install it with rustup:

    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --component rustfmt,clippy
    source "$HOME/.cargo/env"

then run this script again (under sudo, your own ~/.cargo/bin is found too).
EOF
  exit 1
fi
say "rust: $(cargo --version 2>/dev/null || echo 'cargo found but not working')"
cargo --version >/dev/null 2>&1 ||
  die "cargo does not run; with rustup: rustup default stable"

# --- 3. Docker engine ----------------------------------------------------------
docker_up() { as_root docker info >/dev/null 2>&1; }
# Docker 20.10 can deadlock its network controller (moby/libnetwork#2679):
# `docker info` still answers but inspecting a container hangs for good.
docker_wedged() {
  local ids
  ids=$(as_root timeout 20 docker ps -aq 2>/dev/null) || return 0
  [ -z "$ids" ] && return 1
  # A container removed meanwhile is an error, not a hang: only time counts.
  # shellcheck disable=SC2086
  as_root timeout 20 docker inspect $ids >/dev/null 2>&1
  [ $? -eq 124 ]
}
if docker_up && docker_wedged; then
  say "docker: the engine is wedged (inspecting a container hangs): restarting it"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 &&
    systemctl is-active --quiet docker 2>/dev/null; then
    as_root systemctl restart docker >/dev/null 2>&1 || true
  else
    as_root pkill -x dockerd || true
    for _ in $(seq 20); do pidof dockerd >/dev/null 2>&1 || break; sleep 1; done
    as_root pkill -9 -x dockerd 2>/dev/null || true
    sleep 1
  fi
fi
if docker_up; then
  say "docker: engine running"
else
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    say "docker: starting the docker service"
    as_root systemctl start docker >/dev/null 2>&1 || true
  fi
  if ! docker_up && ! pidof dockerd >/dev/null 2>&1; then
    say "docker: starting dockerd in the background (log: $DOCKERD_LOG)"
    as_root sh -c "nohup setsid dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &" ||
      die "could not start dockerd"
  fi
  for _ in $(seq 60); do
    docker_up && break
    sleep 1
  done
  if ! docker_up; then
    [ -r "$DOCKERD_LOG" ] && tail -n 20 "$DOCKERD_LOG" >&2
    die "the Docker engine did not answer within 60 s (see $DOCKERD_LOG)"
  fi
  say "docker: engine running"
fi

# --- 4. base images ------------------------------------------------------------
as_root "$REPO_ROOT/scripts/build-base-images.sh" ||
  die "building the base images failed (scripts/build-base-images.sh needs root, mmdebstrap, a Debian mirror and dockerd)"

# --- 5. git ownership ----------------------------------------------------------
# git (and libgit2, which the server uses) refuses a repository owned by
# another user; under sudo the checkout belongs to the invoking user.
if [ -d "$REPO_ROOT/.git" ] && [ "$(stat -c %u "$REPO_ROOT")" != "$(id -u)" ]; then
  if ! git config --global --get-all safe.directory 2>/dev/null | grep -Fxq "$REPO_ROOT"; then
    say "git: trusting $REPO_ROOT (owned by another user) in $(id -un)'s git config"
    git config --global --add safe.directory "$REPO_ROOT"
  fi
fi

# --- 6. moto (AWS tests) -------------------------------------------------------
MOTO_VENV=/opt/easydeploy-moto
if [ -x "$MOTO_VENV/bin/moto_server" ]; then
  say "moto: present in $MOTO_VENV"
else
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    say "installing python3-venv"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv ||
      die "apt-get install python3-venv failed"
  fi
  say "moto: installing moto[server] in $MOTO_VENV"
  as_root python3 -m venv "$MOTO_VENV" || die "cannot create the venv $MOTO_VENV"
  as_root "$MOTO_VENV/bin/pip" install -q 'moto[server]' ||
    die "pip install 'moto[server]' failed (is PyPI reachable?)"
fi

# --- 7. schemathesis (API fuzzing) ---------------------------------------------
ST_VENV=/opt/easydeploy-schemathesis
if [ -x "$ST_VENV/bin/schemathesis" ]; then
  say "schemathesis: present in $ST_VENV"
else
  say "schemathesis: installing in $ST_VENV"
  as_root python3 -m venv "$ST_VENV" || die "cannot create the venv $ST_VENV"
  as_root "$ST_VENV/bin/pip" install -q 'schemathesis>=4,<5' ||
    die "pip install schemathesis failed (is PyPI reachable?)"
fi

say "ready"
