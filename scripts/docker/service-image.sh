#!/usr/bin/env bash
# Builds the images of the services MemQuorum talks to, on the local engine,
# from what scripts/install-services.sh cached (no registry is reachable
# here, so nothing is pulled; the base is scripts/docker/base-image.sh's
# debian:12-slim).
#
#   scripts/docker/service-image.sh rnacos    memquorum-rnacos:0.8.8
#
# Prints the tag. The build context is a temporary directory holding the
# Dockerfile beside this script and the cached files it copies; an image of
# the same tag is rebuilt only when those inputs changed (their hash is a
# label of the image).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${MQ_CACHE:-$HOME/.cache/memquorum}

die() { echo "service-image: $*" >&2; exit 1; }

ctx=$(mktemp -d /tmp/mq-service-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT

case ${1:-} in
rnacos)
  version=${RNACOS_VERSION:-0.8.8}
  root=$cache/rnacos-$version
  if [ ! -x "$root/bin/rnacos" ] || [ ! -d "$root/data-template" ]; then
    # install builds the binary; a first start makes the data template.
    bash "$repo/scripts/services/nacos.sh" install >&2
    probe=$(mktemp -d /tmp/mq-rnacos-probe.XXXXXX)
    bash "$repo/scripts/services/nacos.sh" start "$probe" >/dev/null
    bash "$repo/scripts/services/nacos.sh" stop "$probe" >/dev/null
    rm -rf "$probe"
  fi
  tag=memquorum-rnacos:$version
  cp "$here/rnacos/Dockerfile" "$ctx/"
  cp "$root/bin/rnacos" "$ctx/rnacos"
  cp -r "$root/data-template" "$ctx/data"
  ;;
*) echo "usage: $0 rnacos" >&2; exit 2 ;;
esac

key=$(cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
key=$key-$(docker image inspect -f '{{.Id}}' debian:12-slim 2>/dev/null | cut -c8-19)
have=$(docker image inspect -f '{{index .Config.Labels "org.memquorum.inputs"}}' "$tag" 2>/dev/null || true)
if [ "$have" != "$key" ]; then
  DOCKER_BUILDKIT=0 docker build -q --label "org.memquorum.inputs=$key" -t "$tag" "$ctx" >&2 ||
    die "docker build of $tag failed"
fi
echo "$tag"
