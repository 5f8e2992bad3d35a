#!/usr/bin/env bash
# Builds the images of the services MemQuorum talks to, on the local engine,
# from what scripts/install-services.sh cached and Debian's packages (no
# registry is reachable here, so nothing is pulled; the base is
# scripts/docker/base-image.sh's debian:12-slim).
#
#   scripts/docker/service-image.sh rnacos       memquorum-rnacos:0.8.8
#   scripts/docker/service-image.sh kafka        memquorum-kafka:4.4.0 (KRaft)
#   scripts/docker/service-image.sh prometheus   memquorum-prometheus:debian12
#
# Prints the tag. The build context is build/docker-context/NAME: the
# Dockerfile (and files) beside this script in NAME/, plus the cached files
# it copies; docker-compose.yml builds from the same folders. An image of the
# same tag is rebuilt only when those inputs changed (their hash is a label
# of the image). RUN steps that install Debian packages use the network
# tests/image/imagebuild.py picks (the default bridge, or the host's when
# the bridge cannot reach the Debian mirror).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${MQ_CACHE:-$HOME/.cache/memquorum}

die() { echo "service-image: $*" >&2; exit 1; }

name=${1:-}
ctx=$repo/build/docker-context/$name
[ -d "$here/$name" ] || { echo "usage: $0 rnacos|kafka|prometheus" >&2; exit 2; }
rm -rf "$ctx"
mkdir -p "$ctx"
cp -r "$here/$name/." "$ctx/"
apt=0
case $name in
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
  cp "$root/bin/rnacos" "$ctx/rnacos"
  cp -r "$root/data-template" "$ctx/data"
  ;;
kafka)
  version=${KAFKA_VERSION:-4.4.0}
  [ -f "$cache/kafka-$version/.complete" ] || bash "$repo/scripts/services/kafka.sh" fetch >&2
  tag=memquorum-kafka:$version
  cp -r "$cache/kafka-$version/libs" "$ctx/libs"
  apt=1
  ;;
prometheus)
  tag=memquorum-prometheus:debian12
  apt=1
  ;;
esac

key=$(cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
key=$key-$(docker image inspect -f '{{.Id}}' debian:12-slim 2>/dev/null | cut -c8-19)
have=$(docker image inspect -f '{{index .Config.Labels "org.memquorum.inputs"}}' "$tag" 2>/dev/null || true)
if [ "$have" != "$key" ]; then
  net=default
  if ((apt)); then
    net=$(cd "$repo/tests/image" && python3 -c 'import imagebuild; print(imagebuild.build_network("debian:12-slim"))')
  fi
  DOCKER_BUILDKIT=0 docker build -q --network "$net" --label "org.memquorum.inputs=$key" -t "$tag" "$ctx" >&2 ||
    die "docker build of $tag failed"
fi
echo "$tag"
