#!/usr/bin/env bash
# Environment for running Easy Deploy on a machine prepared by scripts/setup.sh.
# Sourced by scripts/test.sh, scripts/quickstart.sh and scripts/bench-deploy.sh
# (or by you: `source scripts/env.sh`, or `eval "$(scripts/env.sh)"`).
#
# Exports, only when not already set:
#   EASYDEPLOY_BASE_IMAGE_PYTHON=easydeploy/python:bookworm   (made by scripts/build-base-images.sh,
#   EASYDEPLOY_BASE_IMAGE_NODE=easydeploy/node:bookworm        because no registry can be pulled from)
#   EASYDEPLOY_BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt   (when that file exists: builds then
#                                                trust the host's CAs, e.g. a TLS-intercepting proxy)
# and puts a rustup toolchain on PATH when cargo is not there yet: ~/.cargo/bin,
# or under sudo the invoking user's ~/.cargo/bin (with that user's RUSTUP_HOME).
#
# No `set -euo pipefail` at the top: this file runs inside the shell that
# sources it, and those options would change (and with -e, could close) that
# shell. The scripts that source it set them themselves; run directly, it does.

if [ -z "${EASYDEPLOY_BASE_IMAGE_PYTHON:-}" ]; then
  export EASYDEPLOY_BASE_IMAGE_PYTHON=easydeploy/python:bookworm
fi
if [ -z "${EASYDEPLOY_BASE_IMAGE_NODE:-}" ]; then
  export EASYDEPLOY_BASE_IMAGE_NODE=easydeploy/node:bookworm
fi
if [ -z "${EASYDEPLOY_BUILD_CA_BUNDLE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export EASYDEPLOY_BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi

# cargo: sudo resets PATH (secure_path) and HOME, so a rustup install in the
# invoking user's home is not found as root without this.
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    _easydeploy_cargo_path=1
  elif [ -n "${SUDO_USER:-}" ] && [ "${SUDO_USER}" != root ]; then
    _easydeploy_user_home=$(getent passwd "$SUDO_USER" 2>/dev/null | cut -d: -f6)
    if [ -n "$_easydeploy_user_home" ] && [ -x "$_easydeploy_user_home/.cargo/bin/cargo" ]; then
      export PATH="$_easydeploy_user_home/.cargo/bin:$PATH"
      _easydeploy_cargo_path=1
      # The toolchains stay the user's; crates downloaded as root go to root's CARGO_HOME.
      if [ -z "${RUSTUP_HOME:-}" ] && [ -d "$_easydeploy_user_home/.rustup" ]; then
        export RUSTUP_HOME="$_easydeploy_user_home/.rustup"
      fi
    fi
    unset _easydeploy_user_home
  fi
fi

# Run directly rather than sourced: print the settings as shell code.
if [ -n "${BASH_SOURCE:-}" ] && [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  for _var in EASYDEPLOY_BASE_IMAGE_PYTHON EASYDEPLOY_BASE_IMAGE_NODE EASYDEPLOY_BUILD_CA_BUNDLE RUSTUP_HOME PATH; do
    if [ "$_var" = PATH ] && [ -z "${_easydeploy_cargo_path:-}" ]; then
      continue
    fi
    if [ -n "${!_var:-}" ]; then
      printf 'export %s=%q\n' "$_var" "${!_var}"
    fi
  done
fi

unset _easydeploy_cargo_path _var
