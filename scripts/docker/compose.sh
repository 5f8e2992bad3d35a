#!/usr/bin/env bash
# What docker-compose.yml needs on this machine, where no registry answers.
#
#   scripts/docker/compose.sh install   Debian's docker-compose, if no compose
#                                       client is installed (as root)
#   scripts/docker/compose.sh images    every image the file starts, built
#                                       here: debian:12-slim (base-image.sh),
#                                       memquorum:latest (the Dockerfile, by
#                                       tests/image/imagebuild.py),
#                                       memquorum-rnacos, memquorum-kafka and
#                                       memquorum-prometheus (service-image.sh)
#
# Grafana is not among them: no Debian package or buildable source for it
# here, so its service pulls an image and sits behind the profile "grafana";
# `images` says so. The engine must answer (scripts/docker/engine.sh start).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

case ${1:-} in
install)
  if command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; then
    exit 0
  fi
  [ "$(id -u)" = 0 ] || { echo "compose: installing docker-compose needs root" >&2; exit 1; }
  echo "compose: installing Debian's docker-compose"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose \
    >/dev/null || {
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  }
  ;;
images)
  bash "$here/base-image.sh"
  tag=$(python3 "$repo/tests/image/imagebuild.py" | tail -n 1)
  docker tag "$tag" memquorum:latest
  echo "compose: memquorum:latest = $tag"
  for s in rnacos kafka prometheus; do
    echo "compose: $(bash "$here/service-image.sh" "$s")"
  done
  echo "compose: grafana is not built here (it pulls grafana/grafana); it only starts with --profile grafana"
  ;;
*)
  echo "usage: $0 install|images" >&2
  exit 2
  ;;
esac
