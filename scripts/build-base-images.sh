#!/usr/bin/env bash
# Builds the base images Easy Deploy's generated Dockerfiles start from, out of
# Debian packages, for hosts that cannot pull images from a registry.
#
#   scripts/build-base-images.sh            # builds easydeploy/python:bookworm and easydeploy/node:bookworm
#   scripts/build-base-images.sh python     # only one family
#
# Then point the platform at them (scripts/env.sh does this):
#   EASYDEPLOY_BASE_IMAGE_PYTHON=easydeploy/python:bookworm
#   EASYDEPLOY_BASE_IMAGE_NODE=easydeploy/node:bookworm
#
# Needs root, mmdebstrap and a running Docker engine. An image that already
# exists is left alone (pass FORCE=1 to rebuild). About a minute per image.
set -euo pipefail

families=("$@")
[ ${#families[@]} -eq 0 ] && families=(python node)

command -v mmdebstrap >/dev/null || {
  echo "mmdebstrap is missing: apt-get install -y mmdebstrap" >&2
  exit 1
}

for family in "${families[@]}"; do
  case "$family" in
    python) packages="python3,python3-venv,python3-pip,ca-certificates" ;;
    node) packages="nodejs,npm,ca-certificates" ;;
    *)
      echo "unknown family '$family' (expected python or node)" >&2
      exit 1
      ;;
  esac
  image="easydeploy/$family:bookworm"
  if [ -z "${FORCE:-}" ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image already present"
    continue
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "building $image from Debian packages ($packages)"
  mmdebstrap --quiet --variant=minbase --include="$packages" \
    --customize-hook='chroot "$1" sh -c "rm -rf /var/lib/apt/lists/* /var/cache/apt/*"' \
    bookworm "$tmp/rootfs.tar"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/sh"]' \
    "$tmp/rootfs.tar" "$image" >/dev/null
  rm -rf "$tmp"
  trap - EXIT
  echo "$image built"
done
