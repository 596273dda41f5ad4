#!/usr/bin/env bash
# The test command of Easy Deploy (CI runs it through .ci/run):
#
#   sudo scripts/test.sh                 # everything
#   sudo scripts/test.sh -p easydeploy-core    # extra arguments go to `cargo test`
#
# Phases, stopping at the first failure (non-zero exit): machine setup
# (scripts/setup.sh: packages, dockerd, base images), `cargo fmt --check`,
# `cargo clippy -D warnings`, `cargo test --workspace` (the API fuzzing test
# runs last, on its own, so its schemathesis summary and case count are
# printed). Prints how long each phase took. The tests use the real Docker engine, so this runs as root.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f s", b - a }'; }

timings=()
started=$(now)

# phase NAME COMMAND...: runs the command, records its time, stops everything on failure.
phase() {
  local name=$1
  shift
  printf '\n==> %s\n' "$name"
  local t0 rc=0
  t0=$(now)
  "$@" || rc=$?
  local took
  took=$(elapsed "$t0" "$(now)")
  if [ "$rc" -ne 0 ]; then
    printf '\n<== %s FAILED (exit %d) after %s\n' "$name" "$rc" "$took" >&2
    summary
    exit "$rc"
  fi
  timings+=("$(printf '%-8s %s' "$name" "$took")")
  printf '<== %s ok (%s)\n' "$name" "$took"
}

summary() {
  printf '\ntimings:\n'
  local line
  for line in ${timings[@]+"${timings[@]}"}; do
    printf '  %s\n' "$line"
  done
  printf '  %-8s %s\n' total "$(elapsed "$started" "$(now)")"
}

phase setup "$REPO_ROOT/scripts/setup.sh"

# shellcheck source=scripts/env.sh
source "$REPO_ROOT/scripts/env.sh"
for component in fmt clippy; do
  if ! cargo "$component" --version >/dev/null 2>&1; then
    name=$([ "$component" = fmt ] && echo rustfmt || echo clippy)
    echo "error: cargo $component is missing: rustup component add $name" >&2
    exit 1
  fi
done

# Tenant networks left by interrupted runs would use up Docker's address pools.
docker network prune -f --filter label=easydeploy.tenant >/dev/null 2>&1 || true

phase fmt cargo fmt --all -- --check
phase clippy cargo clippy --workspace --all-targets -- -D warnings
if [ "$#" -gt 0 ]; then
  phase test cargo test --workspace "$@"
else
  phase test cargo test --workspace -- --skip the_api_survives_fuzzing
  phase fuzz cargo test -p easydeploy --test api_fuzz -- --nocapture
fi

summary
printf '\nall checks passed\n'
